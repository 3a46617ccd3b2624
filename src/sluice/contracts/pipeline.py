"""CI pipelines with Sluice's four mandatory gates (``sluice ci init``).

Trunk-based: the pipeline runs on every push to any branch and on every pull or merge
request. Four gates, each a job of its own that writes a JUnit report under ``reports/``:

=================  ===========================================================================
unit               ``pytest`` over the repository's tests
contract           ``sluice contract check APP``: sources, partners, Sluice's own API
security           ``sluice ci security APP``: bandit, detect-secrets, pinned lock file
prompt-regression  ``sluice test APP``: golden cases and snapshots
=================  ===========================================================================

Each job installs the pinned dependencies (``INSTALL``) first. The texts are built here and
checked by parsing them back (:func:`gate_commands` is what a test runs locally).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

PROVIDERS = ("github", "gitlab")
#: Where each provider looks for its pipeline, relative to the repository root.
PIPELINE_FILES = {
    "github": Path(".github/workflows/sluice-gates.yml"),
    "gitlab": Path(".gitlab-ci.yml"),
}
REPORTS = "reports"


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """What the pipeline runs: the app, the lock file, the tests folder, the install
    command and the Python version."""

    app: str = "."
    lock: str = "requirements/lock.txt"
    tests: str = "tests"
    install: str = ""
    python: str = "3.11"

    def install_command(self) -> str:
        """The install command: as given, else the lock file and the project itself."""
        return self.install or (
            f"python -m pip install -r {shlex.quote(self.lock)} && "
            "python -m pip install --no-deps -e ."
        )


def gate_commands(options: PipelineOptions) -> dict[str, str]:
    """The shell command of each gate, in the order they appear."""
    app = shlex.quote(options.app)
    return {
        "unit": f"python -m pytest -q {shlex.quote(options.tests)} --junitxml={REPORTS}/unit.xml",
        "contract": f"sluice contract check {app} --junit {REPORTS}/contract.xml",
        "security": f"sluice ci security {app} --lock {shlex.quote(options.lock)} "
        f"--junit {REPORTS}/security.xml",
        "prompt-regression": f"sluice test {app} --junit {REPORTS}/prompt-regression.xml",
    }


def _dump(doc: object, header: str) -> str:
    body = yaml.safe_dump(doc, sort_keys=False, width=100, default_flow_style=False)
    return header + body


_HEADER = (
    "# Sluice's four mandatory gates (unit, contract, security, prompt regression), on\n"
    "# every push and every {what}. Written by `sluice ci init`; edit freely.\n"
)


def github_workflow(options: PipelineOptions) -> str:
    """A GitHub Actions workflow: one job per gate, each uploading its JUnit report."""
    jobs = {}
    for gate, command in gate_commands(options).items():
        jobs[gate] = {
            "name": gate,
            "runs-on": "ubuntu-latest",
            "steps": [
                {"uses": "actions/checkout@v4"},
                {"uses": "actions/setup-python@v5", "with": {"python-version": options.python}},
                {"name": "install", "run": options.install_command()},
                {"name": gate, "run": f"mkdir -p {REPORTS} && {command}"},
                {
                    "name": "report",
                    "if": "always()",
                    "uses": "actions/upload-artifact@v4",
                    "with": {"name": f"junit-{gate}", "path": f"{REPORTS}/{gate}.xml"},
                },
            ],
        }
    doc = {
        "name": "sluice gates",
        "on": {"push": {"branches": ["**"]}, "pull_request": {}},
        "jobs": jobs,
    }
    return _dump(doc, _HEADER.format(what="pull request"))


def gitlab_pipeline(options: PipelineOptions) -> str:
    """A GitLab CI pipeline: one job per gate in stage ``gates``, JUnit reports attached."""
    doc: dict[str, object] = {
        "workflow": {
            "rules": [
                {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
                {"if": "$CI_COMMIT_BRANCH"},
            ]
        },
        "stages": ["gates"],
        "default": {
            "image": f"python:{options.python}",
            "before_script": [options.install_command()],
        },
    }
    for gate, command in gate_commands(options).items():
        doc[gate] = {
            "stage": "gates",
            "script": [f"mkdir -p {REPORTS}", command],
            "artifacts": {"when": "always", "reports": {"junit": f"{REPORTS}/{gate}.xml"}},
        }
    return _dump(doc, _HEADER.format(what="merge request"))


def write_pipeline(root: Path, provider: str, options: PipelineOptions, force: bool) -> Path:
    """Write the provider's pipeline file under ``root``; an existing one is kept unless
    ``force`` (:class:`FileExistsError`)."""
    if provider not in PROVIDERS:
        raise ValueError(f"--provider: must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    path = root / PIPELINE_FILES[provider]
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    text = github_workflow(options) if provider == "github" else gitlab_pipeline(options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
