"""Tests for conformance/report/compare.py: `conformance compare OLD NEW` in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.report.compare import compare


def _check(check_id: str, status: str, shape: Any = None, message: str = "") -> dict[str, Any]:
    return {"id": check_id, "status": status, "message": message, "evidence": [], "shape": shape}


def _item(item_id: str, status: str, *checks: dict[str, Any]) -> dict[str, Any]:
    version = item_id.split("/")[0]
    return {
        "id": item_id,
        "version": version,
        "title": item_id,
        "kind": "api",
        "status": status,
        "checks": list(checks),
    }


def _report(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "target": {"base_url": "http://127.0.0.1:1234", "model": "m", "server": None},
        "started_at": "2025-01-01T00:00:00+00:00",
        "duration_s": 1.0,
        "summary": {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, "not_covered": 0},
        "items": list(items),
    }


OLD = _report(
    _item("a/regress", "pass", _check("c", "pass", {"keys": ["id"]})),
    _item("a/fix", "fail", _check("c", "fail", message="broken")),
    _item("a/shape", "pass", _check("c", "pass", {"keys": ["id", "usage"], "events": 3})),
    _item("a/skip", "skip", _check("c", "skip")),
    _item("a/gone", "pass", _check("c", "pass")),
    _item("a/grow", "pass", _check("old", "pass")),
    _item("a/todo", "not_covered"),
)
NEW = _report(
    _item("a/regress", "error", _check("c", "error", message="verdict raised KeyError: 'id'")),
    _item("a/fix", "pass", _check("c", "pass")),
    _item("a/shape", "pass", _check("c", "pass", {"keys": ["id"], "events": 4})),
    _item("a/skip", "pass", _check("c", "pass")),
    _item("a/grow", "pass", _check("old", "pass"), _check("new", "pass")),
    _item("a/todo", "not_covered"),
    _item("a/born", "pass", _check("c", "pass")),
)


def _write(tmp_path: Path, name: str, report: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return str(path)


def test_compare_sorts_differences_into_sections() -> None:
    result = compare(OLD, NEW)
    assert [(c.key, c.old, c.new) for c in result.regressions] == [("a/regress::c", "pass", "error")]
    assert [(c.key, c.old, c.new) for c in result.fixes] == [("a/fix::c", "fail", "pass")]
    assert [c.key for c in result.shape_changes] == ["a/shape::c"]
    assert "root['events'] changed from 3 to 4" in result.shape_changes[0].shape_diff
    assert "Item root['keys'][1] (\"usage\") removed" in result.shape_changes[0].shape_diff
    assert [(c.key, c.old, c.new) for c in result.status_changes] == [("a/skip::c", "skip", "pass")]
    assert result.new == ("a/born", "a/grow::new")
    assert result.removed == ("a/gone",)


def test_a_regression_exits_1_and_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", _write(tmp_path, "old.json", OLD), _write(tmp_path, "new.json", NEW)]) == 1
    out = capsys.readouterr().out
    assert (
        "regressions (pass -> fail/error): 1\n  a/regress::c: pass -> error  (verdict raised KeyError: 'id')\n" in out
    )
    assert "fixes (fail/error -> pass): 1\n  a/fix::c: fail -> pass\n" in out
    assert "shape changes (same status, different shape): 1\n  a/shape::c\n      " in out
    assert "new: 2\n  a/born\n  a/grow::new\n" in out
    assert "removed: 1\n  a/gone\n" in out


def test_fixes_alone_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = _report(_item("a/fix", "pass", _check("c", "pass")))
    old = _report(_item("a/fix", "fail", _check("c", "fail")))
    assert main(["compare", _write(tmp_path, "old.json", old), _write(tmp_path, "new.json", new)]) == 0
    assert "fixes (fail/error -> pass): 1" in capsys.readouterr().out


def test_identical_reports_have_no_differences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "r.json", OLD)
    assert main(["compare", path, path]) == 0
    assert capsys.readouterr().out.endswith("no differences\n")


def test_an_invalid_report_is_a_one_line_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, "bad.json", {"schema_version": 1, "items": []})
    assert main(["compare", bad, _write(tmp_path, "new.json", NEW)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"conformance compare: {bad} is not a conformance report.json")
    assert err.count("\n") == 1


def test_a_missing_report_is_a_one_line_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(tmp_path / "nope.json"), str(tmp_path / "nope.json")]) == 2
    assert (
        capsys.readouterr().err
        == f"conformance compare: cannot read {tmp_path / 'nope.json'}: No such file or directory\n"
    )


def _with_run(report: dict[str, Any], source: str = "run", only: list[str] | None = None) -> dict[str, Any]:
    context = {"source": source, "suite_version": "0.1.0", "only": only, "command": "conformance run"}
    return {**report, "run": context}


def test_items_an_only_run_left_out_are_not_run_not_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = _with_run(_report(_item("a/one", "pass", _check("c", "pass")), _item("b/two", "pass", _check("c", "pass"))))
    partial = _with_run(_report(_item("a/one", "pass", _check("c", "pass"))), only=["a"])
    comparison = compare(full, partial)
    assert comparison.removed == ()
    assert comparison.not_run == ("b/two",)
    old, new = _write(tmp_path, "old.json", full), _write(tmp_path, "new.json", partial)
    assert main(["compare", old, new]) == 0
    out = capsys.readouterr().out
    assert "not run in both (an --only filter left them out, not a catalog change): 1 items" in out
    assert "removed" not in out


def test_a_run_report_and_a_check_report_are_compared_item_by_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _with_run(_report(_item("a/one", "pass", _check("c1", "pass"), _check("c2", "pass"))))
    recorded = _report(_item("a/one", "fail", _check("recorded-traffic", "fail", message="no usage chunk")))
    comparison = compare(run, recorded)  # the check report has no context: recognised by its check ids
    assert comparison.by_item
    assert [(c.key, c.old, c.new, c.message) for c in comparison.regressions] == [
        ("a/one", "pass", "fail", "no usage chunk")
    ]
    assert comparison.removed == comparison.new == ()
    assert main(["compare", _write(tmp_path, "a.json", run), _write(tmp_path, "b.json", recorded)]) == 1
    assert "compared item by item" in capsys.readouterr().out


def test_pass_to_skip_is_lost_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _report(_item("a/one", "pass", _check("c", "pass")))
    new = _report(_item("a/one", "skip", _check("c", "skip", message="not implemented by this server")))
    assert [c.key for c in compare(old, new).lost] == ["a/one::c"]
    assert main(["compare", _write(tmp_path, "a.json", old), _write(tmp_path, "b.json", new)]) == 1
    assert "lost (pass -> skip: no longer exercised or implemented): 1" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary", b"", b"[1, 2]"])
def test_unreadable_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    good = _write(tmp_path, "good.json", _report())
    assert main(["compare", str(bad), good]) == 2
    assert main(["compare", good, str(tmp_path)]) == 2  # a directory
    err = capsys.readouterr().err
    assert err.count("\n") == 2
    assert err.startswith("conformance compare: ")
