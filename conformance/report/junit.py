"""junit.xml: one testcase per check (classname = item id) for CI tools; skips carry their reason."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.check import Status
from conformance.report._text import check_text, clip
from conformance.results import CheckResult, ItemResult, RunReport

__all__ = ["render", "write"]

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot hold at all, not even escaped; servers do send them."""


def write(report: RunReport, path: Path) -> None:
    tree = ET.ElementTree(render(report))
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def render(report: RunReport) -> ET.Element:
    cases = [case for item in report.items for case in _cases(item)]
    counts = {
        "tests": str(len(cases)),
        "failures": str(sum(c.find("failure") is not None for c in cases)),
        "errors": str(sum(c.find("error") is not None for c in cases)),
        "skipped": str(sum(c.find("skipped") is not None for c in cases)),
        "time": f"{report.duration_s:.3f}",
    }
    root = ET.Element("testsuites", {"name": "llm-conformance", **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": _clean(f"conformance {report.target.model}"),
            "timestamp": report.started_at[:19],
            **counts,
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in report.target.to_dict().items():
        ET.SubElement(properties, "property", name=name, value=_clean(value or ""))
    suite.extend(cases)
    return root


def _cases(item: ItemResult) -> list[ET.Element]:
    if not item.checks:
        case = _case(item.id, "item", 0.0)
        ET.SubElement(case, "skipped", message=_clean(f"{item.status}: {item.reason}".rstrip(": ")))
        return [case]
    return [_check_case(item, check) for check in item.checks]


def _check_case(item: ItemResult, check: CheckResult) -> ET.Element:
    case = _case(item.id, check.id, check.duration_s)
    if check.status in (Status.FAIL, Status.ERROR):
        tag = "failure" if check.status == Status.FAIL else "error"
        outcome = ET.SubElement(case, tag, message=_clean(clip(check.message)), type=str(check.status))
        outcome.text = _clean(check_text(check.evidence, check.requests))
    elif check.status in (Status.SKIP, Status.NOT_COVERED):
        ET.SubElement(case, "skipped", message=_clean(clip(check.message) or str(check.status)))
    if check.warnings and check.status not in (Status.FAIL, Status.ERROR):
        # JUnit has no warning outcome: the case passes (or skips) and its output carries the warnings.
        output = ET.SubElement(case, "system-out")
        output.text = _clean("warnings (they do not fail the check):\n\n" + check_text(check.warnings, check.requests))
    return case


def _case(classname: str, name: str, seconds: float) -> ET.Element:
    return ET.Element("testcase", classname=_clean(classname), name=_clean(name), time=f"{seconds:.3f}")


def _clean(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
