"""``sluice ci init``: the generated pipelines parse, and the GitHub one runs here, step by step.

The GitHub workflow's ``run:`` steps are run locally in their order, as one script per job,
on a tiny repository: an app with contracts and a golden suite, a unit test, a lock file. The
only steps not run are the ``uses:`` actions (checkout, Python set-up, report upload), which
are GitHub's own and listed explicitly below; the install step installs nothing new (the lock
file pins a package this environment has, and ``--dry-run`` keeps the shared environment as
it is).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice.contracts.security import check_bandit, check_lock, check_secrets
from tests.contracts.conftest import ROOT

BASH = shutil.which("bash") or "/bin/bash"
GATES = ["unit", "contract", "security", "prompt-regression"]
ACTIONS = {"actions/checkout@v4", "actions/setup-python@v5", "actions/upload-artifact@v4"}
SUITES = """
golden: {suites: [orders]}
"""
GOLDEN = """
suite: orders
version: 1
workflow: orders
cases:
  - name: big-order
    input: {order_id: "7", amount: 5000}
    expect: {risk: high}
  - name: small-order
    input: {order_id: "8", amount: 12}
    expect: {risk: low}
"""
UNIT = '''
"""A unit test of the tiny app's step."""

import importlib.util
from pathlib import Path

from sluice.testing import step_context


async def test_big_orders_are_high_risk() -> None:
    path = Path(__file__).parents[1] / "app/workflows/order_steps.py"
    spec = importlib.util.spec_from_file_location("order_steps", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = await module.score(step_context(), {"order_id": "1", "amount": 5000})
    assert out["risk"] == "high"
'''


def lock_line(name: str) -> str:
    """The pin of ``name`` in the project's own lock file (without its digests)."""
    for line in (ROOT / "requirements/constraints.txt").read_text().splitlines():
        if line.lower().startswith(name.lower() + "=="):
            return line
    raise AssertionError(f"{name} is not in the lock file")


@pytest.fixture
def repo(tiny_app: Path, tmp_path: Path) -> Path:
    """A repository: the tiny app under app/, its suites, a unit test and a lock file."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.move(tiny_app, root / "app")
    (root / "app/tests/golden").mkdir(parents=True)
    (root / "app/tests/suites.yaml").write_text(textwrap.dedent(SUITES))
    (root / "app/tests/golden/orders.v1.yaml").write_text(textwrap.dedent(GOLDEN))
    (root / "tests").mkdir()
    (root / "tests/test_steps.py").write_text(textwrap.dedent(UNIT))
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nasyncio_mode = "auto"\n'
        'asyncio_default_fixture_loop_scope = "function"\n'
    )
    (root / "requirements").mkdir()
    (root / "requirements/lock.txt").write_text(f"# pinned\n{lock_line('PyYAML')}\n")
    return root


def init(repo: Path, provider: str) -> Path:
    """Run ``sluice ci init`` for ``provider`` in ``repo``; return the file written."""
    install = "python -m pip install --dry-run -q -r requirements/lock.txt"
    cmd = [
        sys.executable,
        "-m",
        "sluice",
        "ci",
        "init",
        "--provider",
        provider,
        "--dir",
        str(repo),
        "--app",
        "app",
        "--install",
        install,
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)
    return Path(done.stdout.strip())


def local_env() -> dict[str, str]:
    """This environment's Python and this checkout's Sluice first on the paths."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT / "src")
    env["HF_HUB_OFFLINE"] = "1"
    return env


def junit_counts(path: Path) -> tuple[int, int]:
    """Tests and failures (errors included) of a JUnit report."""
    root = ET.parse(path).getroot()  # noqa: S314 - a report this test's pipeline wrote
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    return tests, failed


@pytest.mark.slow
def test_the_github_workflow_runs_on_every_push_and_runs_each_gate(repo: Path) -> None:
    path = init(repo, "github")
    assert path == repo / ".github/workflows/sluice-gates.yml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    assert doc["on"] == {"push": {"branches": ["**"]}, "pull_request": {}}
    assert list(doc["jobs"]) == GATES
    scripts: dict[str, list[str]] = {}
    for gate, job in doc["jobs"].items():
        steps = job["steps"]
        assert {s["uses"] for s in steps if "uses" in s} == ACTIONS, gate
        assert all(("uses" in s) != ("run" in s) for s in steps), gate  # nothing else to skip
        report = [s for s in steps if s.get("uses") == "actions/upload-artifact@v4"]
        assert report[0]["if"] == "always()"
        assert report[0]["with"]["path"] == f"reports/{gate}.xml"
        scripts[gate] = [s["run"] for s in steps if "run" in s]
    env = local_env()
    outcomes = {}
    for gate, commands in scripts.items():
        script = "set -euo pipefail\n" + "\n".join(commands)
        done = subprocess.run(
            [BASH, "-c", script],
            check=False,
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        outcomes[gate] = (done.returncode, done.stdout[-2000:] + done.stderr[-2000:])
    for gate in GATES:
        code, output = outcomes[gate]
        assert code == 0, f"{gate}: {output}"
        tests, failed = junit_counts(repo / f"reports/{gate}.xml")
        assert tests >= 1, gate
        assert failed == 0, gate
    assert junit_counts(repo / "reports/contract.xml") == (3, 0)
    assert junit_counts(repo / "reports/security.xml") == (3, 0)
    assert junit_counts(repo / "reports/prompt-regression.xml") == (2, 0)

    # A broken variant through the same step: the shop renamed a field the mapping reads.
    source = repo / "app/contracts/sources/shop.yaml"
    source.write_text(source.read_text().replace("note", "remark").replace("amount", "total"))
    done = subprocess.run(
        [BASH, "-c", "set -euo pipefail\n" + scripts["contract"][-1]],
        check=False,
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1
    assert junit_counts(repo / "reports/contract.xml") == (3, 1)
    assert "FAIL  inbound shop -> orders: 0/30 valid payloads accepted" in done.stdout


def test_the_gitlab_pipeline_has_the_same_gates_on_pushes_and_merge_requests(
    repo: Path,
) -> None:
    path = init(repo, "gitlab")
    assert path == repo / ".gitlab-ci.yml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    rules = [rule["if"] for rule in doc["workflow"]["rules"]]
    assert rules == ['$CI_PIPELINE_SOURCE == "merge_request_event"', "$CI_COMMIT_BRANCH"]
    assert doc["default"]["before_script"] == [
        "python -m pip install --dry-run -q -r requirements/lock.txt"
    ]
    github = yaml.safe_load(init(repo, "github").read_text())
    for gate in GATES:
        job = doc[gate]
        assert job["stage"] == "gates"
        assert job["artifacts"]["reports"]["junit"] == f"reports/{gate}.xml"
        assert job["artifacts"]["when"] == "always"
        # The same command as the GitHub job's gate step.
        assert f"mkdir -p reports && {job['script'][1]}" == github["jobs"][gate]["steps"][3]["run"]


def test_init_refuses_an_unknown_provider_and_keeps_an_existing_file(repo: Path) -> None:
    cmd = [sys.executable, "-m", "sluice", "ci", "init", "--dir", str(repo)]
    bad = subprocess.run(
        [*cmd, "--provider", "jenkins"], check=False, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert bad.stderr == "error: --provider: must be one of github, gitlab, got 'jenkins'\n"
    init(repo, "gitlab")
    again = subprocess.run(
        [*cmd, "--provider", "gitlab"], check=False, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 2
    assert re.search(r"\.gitlab-ci\.yml exists; pass --force to overwrite it", again.stderr)


def test_the_security_checks_fail_on_a_risky_step_a_secret_and_a_loose_pin(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app"
    (app / "workflows").mkdir(parents=True)
    (app / "workflows/steps.py").write_text(
        "import subprocess\n\n\ndef run(cmd: str) -> None:\n    subprocess.call(cmd, shell=True)\n"
    )
    bandit = check_bandit(app)
    assert not bandit.passed
    assert bandit.message.startswith("bandit: 1 medium/high issues in 1 files")
    assert "B602" in bandit.problems[0]

    key = "AKIA" + "IOSFODNN7EXAMPLE"  # split so that this file itself carries no key
    (app / "settings.yaml").write_text(f"aws_access_key_id: {key}\n")
    secrets = check_secrets([app])
    assert not secrets.passed
    assert secrets.figures["secrets"] >= 1
    assert "settings.yaml:1: AWS Access Key" in secrets.message

    lock = tmp_path / "lock.txt"
    lock.write_text("PyYAML==6.0.4\nrequests>=2\nrich\n# note\n")
    loose = check_lock(lock)
    assert not loose.passed
    assert loose.message.startswith(f"lock: 1/3 requirements of {lock} pinned; first: ")
    assert loose.problems == (
        f"{lock}:2: requests>=2 is not pinned (name==version)",
        f"{lock}:3: rich is not pinned (name==version)",
    )
    assert check_lock(ROOT / "requirements/lock.txt").passed
