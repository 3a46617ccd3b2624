"""JUnit XML of a ``sluice test`` run: one ``<testcase>`` per case (golden case, snapshot
metric, contract check), one ``<testsuite>`` per gate and suite, as CI servers read it.

A failed case carries ``<failure message=...>``; every case's figures go to its
``<system-out>`` as one JSON object (``message``, ``flaky``, ``figures``); a flaky case also
has a ``flaky`` property, and each suite the gate and the release under test.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import orjson

from sluice.suites.results import CaseResult, summarize


def junit_xml(results: Sequence[CaseResult], release: str | None = None) -> bytes:
    """The JUnit XML document of ``results`` (UTF-8, with its declaration)."""
    root = ET.Element("testsuites", name="sluice test")
    root.set("tests", str(len(results)))
    root.set("failures", str(sum(not r.passed for r in results)))
    root.set("errors", "0")
    root.set("time", f"{sum(r.seconds for r in results):.6f}")
    for group in summarize(results):
        suite = ET.SubElement(root, "testsuite", name=f"{group.gate}.{group.suite}")
        suite.set("tests", str(group.cases))
        suite.set("failures", str(group.failed))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        suite.set("time", f"{group.seconds:.6f}")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="gate", value=group.gate)
        ET.SubElement(props, "property", name="release", value=release or "")
        for result in results:
            if (result.gate, result.suite) != (group.gate, group.suite):
                continue
            case = ET.SubElement(suite, "testcase", name=result.name)
            case.set("classname", f"{result.gate}.{result.suite}")
            case.set("time", f"{result.seconds:.6f}")
            if result.flaky:
                case_props = ET.SubElement(case, "properties")
                ET.SubElement(case_props, "property", name="flaky", value="true")
            if not result.passed:
                failure = ET.SubElement(case, "failure", message=result.message)
                failure.set("type", f"{result.gate}.failure")
                failure.text = result.message
            out = ET.SubElement(case, "system-out")
            document = {"message": result.message, "flaky": result.flaky, "figures": result.figures}
            out.text = orjson.dumps(document).decode()
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def write_junit(path: Path, results: Sequence[CaseResult], release: str | None = None) -> None:
    """Write :func:`junit_xml` to ``path`` (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(junit_xml(results, release))
