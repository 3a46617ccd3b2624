"""``sluice env test``: the app's suites (``sluice test``) run inside an environment.

The app under test is the app as declared, with the environment's store and KV in place of its
own (``SLUICE_STORE`` and ``SLUICE_KV`` for the run, and the store handed to the runner so the
runs are kept there rather than in a temporary file) and the environment's release recorded in
the reports. What the suites' runs write, events and keys alike, stays in the environment and
goes with it at ``env down``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sluice.envs.records import EnvironmentRecord
from sluice.suites import SuiteRun, Target, run_suites


def environment_target(
    record: EnvironmentRecord, environ: Mapping[str, str] | None = None
) -> Target:
    """The app of ``record`` as the suites see it inside the environment."""
    env = dict(os.environ if environ is None else environ)
    env["SLUICE_STORE"] = record.store_url
    env["SLUICE_KV"] = record.kv_url
    return Target.load(
        Path(record.app_dir), release=record.release, store=record.store_url, environ=env
    )


def run_environment_suites(
    record: EnvironmentRecord, only: str | None = None, environ: Mapping[str, str] | None = None
) -> SuiteRun:
    """Run the gates of the app's ``tests/suites.yaml`` against the environment."""
    return run_suites(environment_target(record, environ), only=only)
