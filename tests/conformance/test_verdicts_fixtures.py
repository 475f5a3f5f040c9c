"""The exchanges in fixtures/exchanges: a recorded bug fails with its finding, legitimate behaviour with none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.exchange import Exchange
from conformance.verdicts import validate_exchange

FIXTURES = sorted((Path(__file__).parents[2] / "fixtures" / "exchanges").glob("*.json"))


def test_there_are_fixtures() -> None:
    assert len(FIXTURES) >= 10


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_fails_with_its_finding(path: Path) -> None:
    line = json.loads(path.read_text(encoding="utf-8"))
    findings = validate_exchange(Exchange.from_dict(line))
    expect = line["expect"]
    if "findings" in expect:  # legitimate behaviour a rule once flagged: it must stay clean
        assert [(f.item, f.check, f.message) for f in findings] == expect["findings"], expect["why"]
        return
    named = [f for f in findings if f.item == expect["item"] and f.check == expect["check"]]
    assert named, [(f.item, f.check) for f in findings]
    assert named[0].raw
