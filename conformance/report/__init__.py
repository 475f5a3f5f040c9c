"""Report writers: report.json, report.html, junit.xml and report.md from one RunReport."""

from __future__ import annotations

from pathlib import Path

from conformance.report import html, junit, markdown
from conformance.report import json as json_report
from conformance.results import RunReport

__all__ = ["write_reports"]


def write_reports(report: RunReport, directory: Path) -> dict[str, Path]:
    """Write the four reports into `directory` (created if needed); returns their paths by format."""
    directory.mkdir(parents=True, exist_ok=True)
    writers = {
        "json": (json_report.write, "report.json"),
        "html": (html.write, "report.html"),
        "junit": (junit.write, "junit.xml"),
        "markdown": (markdown.write, "report.md"),
    }
    paths = {}
    for name, (write, filename) in writers.items():
        path = directory / filename
        write(report, path)
        paths[name] = path
    return paths
