"""Contract results as a JUnit XML report, the format CI systems show as test results."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from sluice.contracts.results import CheckResult


def junit_xml(results: Sequence[CheckResult], suite: str = "contract") -> str:
    """One ``<testsuite>`` with a ``<testcase>`` per check, a ``<failure>`` per failed one."""
    failures = sum(not r.passed for r in results)
    root = ET.Element("testsuites")
    node = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            node, "testcase", classname=suite, name=result.name, time=f"{result.seconds:.3f}"
        )
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.message)
            failure.text = "\n".join(result.problems)
        else:
            ET.SubElement(case, "system-out").text = result.message
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def write_junit(path: Path, results: Sequence[CheckResult], suite: str = "contract") -> None:
    """Write :func:`junit_xml` to ``path`` (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(results, suite) + "\n")
