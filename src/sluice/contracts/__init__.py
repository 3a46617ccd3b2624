"""Contract tests: what an app takes in, what it sends out, and Sluice's own API.

- :mod:`~sluice.contracts.manifest`: the app's ``contracts/contracts.yaml`` (source schemas,
  partner specs);
- :mod:`~sluice.contracts.inbound`: payloads generated from each source's schema, through the
  real way in: valid ones accepted, broken ones quarantined, never a 5xx;
- :mod:`~sluice.contracts.mock`: a partner API mocked from its spec, checking every request,
  with latency, errors and 429s on demand (``sluice mock serve``);
- :mod:`~sluice.contracts.consumer`: the app's outgoing requests against each partner's spec;
- :mod:`~sluice.contracts.own_api`: Sluice's API against its OpenAPI document (schemathesis);
- :mod:`~sluice.contracts.security` and :mod:`~sluice.contracts.pipeline`: the security gate
  and the pipelines of ``sluice ci``;
- :func:`run_contracts`: all of them (``sluice contract check``, the ``contract`` gate of
  ``sluice test``, whose JUnit writer both commands use).
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sluice.contracts.consumer import check_partner
    from sluice.contracts.inbound import check_inbound
    from sluice.contracts.manifest import Contracts, PartnerContract, SourceContract, load_contracts
    from sluice.contracts.mock import Mock, MockError, MockOptions, Recorded
    from sluice.contracts.own_api import check_own_api
    from sluice.contracts.results import CheckResult
    from sluice.contracts.runner import ContractOptions, run_contracts
    from sluice.contracts.schemas import SchemaError
    from sluice.contracts.spec import Operation, Spec, load_spec

# Where each name lives: imported when first asked for, so that the light parts (results,
# manifests, specs) load without the generators' packages (hypothesis, schemathesis), which
# are the ``testing`` extra.
_HOME = {
    "check_partner": "consumer", "check_inbound": "inbound", "Contracts": "manifest",
    "PartnerContract": "manifest", "SourceContract": "manifest", "load_contracts": "manifest",
    "Mock": "mock", "MockError": "mock", "MockOptions": "mock", "Recorded": "mock",
    "check_own_api": "own_api", "CheckResult": "results", "ContractOptions": "runner",
    "run_contracts": "runner", "SchemaError": "schemas", "Operation": "spec", "Spec": "spec",
    "load_spec": "spec",
}  # fmt: skip


def __getattr__(name: str) -> object:
    import importlib

    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"sluice.contracts.{home}"), name)


__all__ = [
    "CheckResult",
    "ContractOptions",
    "Contracts",
    "Mock",
    "MockError",
    "MockOptions",
    "Operation",
    "PartnerContract",
    "Recorded",
    "SchemaError",
    "SourceContract",
    "Spec",
    "check_inbound",
    "check_own_api",
    "check_partner",
    "load_contracts",
    "load_spec",
    "run_contracts",
]
