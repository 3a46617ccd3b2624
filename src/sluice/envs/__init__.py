"""Ephemeral environments and masked fixtures.

An app declares its environments in ``environments.yaml`` (:mod:`sluice.envs.spec`): where each
one's store and KV live, its release, fixtures and mocks. ``sluice env up APP NAME``
(:func:`environment_up`) makes one isolated from every other (a PostgreSQL schema or database of
its own, a Redis key prefix of its own, or a SQLite file), migrated and recorded
(:mod:`sluice.envs.records`); ``env seed`` loads fixture files into it
(:func:`seed_environment`); ``env test`` runs the app's suites against it; ``env down``
(:func:`environment_down`) removes every trace and checks that none is left.

``sluice fixtures export`` (:func:`export_fixtures`) streams real events to a fixture file
(:mod:`sluice.envs.fixture_file`) with PII replaced by deterministic, keyed pseudonyms of the
same kind (:class:`Pseudonymizer`), secrets removed and nothing sealed left in
(:class:`FixtureMasker`).
"""

from sluice.envs.errors import EnvironmentSpecError, EnvironmentStateError, FixtureError
from sluice.envs.fixture_file import FORMAT, read_fixtures
from sluice.envs.fixtures import ExportReport, export_fixtures, seed_environment
from sluice.envs.lifecycle import (
    DownReport,
    environment_down,
    environment_settings,
    environment_up,
    leftovers,
)
from sluice.envs.masking import REMOVED, FixtureMasker
from sluice.envs.pseudonyms import Pseudonymizer
from sluice.envs.records import EnvironmentRecord
from sluice.envs.spec import EnvironmentSpec, load_environments

__all__ = [
    "FORMAT",
    "REMOVED",
    "DownReport",
    "EnvironmentRecord",
    "EnvironmentSpec",
    "EnvironmentSpecError",
    "EnvironmentStateError",
    "ExportReport",
    "FixtureError",
    "FixtureMasker",
    "Pseudonymizer",
    "environment_down",
    "environment_settings",
    "environment_up",
    "export_fixtures",
    "leftovers",
    "load_environments",
    "read_fixtures",
    "seed_environment",
]
