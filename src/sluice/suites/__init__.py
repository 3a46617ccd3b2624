"""``sluice test``: the gates an app must pass before a release (``docs/testing.md``).

An app declares its gates in ``APP_DIR/tests/suites.yaml`` (:mod:`sluice.suites.manifest`):
each top-level key names a gate of :data:`~sluice.suites.registry.GATES` and holds its
options. The shared types:

- :class:`CaseResult` (frozen): ``gate``, ``suite``, ``name``, ``passed``, ``message``,
  ``seconds``, ``figures`` (the numbers behind the verdict), ``flaky``; one per golden case,
  snapshot metric or contract check;
- :class:`Gate` (a Protocol): ``name`` and ``run(target) -> list[CaseResult]``; a failing
  case is a result, an exception means the gate could not run;
- :class:`Target`: the app under test (``app_dir``, its ``settings`` and ``workflows``, the
  ``release`` tested, optional ``store``/``environ``/``services``), with ``run_inputs`` (events
  through a workflow of the started app, in process, via :class:`~sluice.testing.TestApp`)
  and ``cascade`` (the ``classify`` step's cascade, as ``sluice eval`` runs it);
- :class:`GateSpec` and :data:`GateFactory`: a gate is built from its manifest section;
  :data:`GATES` maps each gate name to its factory;
- :func:`run_suites` runs an app's gates into a :class:`SuiteRun`; :func:`junit_xml` and
  :func:`write_junit` give one JUnit ``<testcase>`` per result;
- :class:`SuiteError`: a malformed suite, snapshot or manifest, naming file, line and field.

The built-in gates: ``golden`` (:mod:`sluice.suites.golden`, versioned input/expected-output
suites) and ``snapshot`` (:mod:`sluice.suites.snapshot`, metrics in tolerance bands).
"""

from sluice.suites.gate import Gate, GateFactory, GateSpec
from sluice.suites.junit import junit_xml, write_junit
from sluice.suites.registry import GATES
from sluice.suites.results import CaseResult, GroupSummary, summarize
from sluice.suites.runner import SuiteRun, run_suites
from sluice.suites.target import RunOutput, Target
from sluice.suites.yamlfile import SuiteError

__all__ = [
    "GATES",
    "CaseResult",
    "Gate",
    "GateFactory",
    "GateSpec",
    "GroupSummary",
    "RunOutput",
    "SuiteError",
    "SuiteRun",
    "Target",
    "junit_xml",
    "run_suites",
    "summarize",
    "write_junit",
]
