"""Live: each covered catalog item finds nothing on the reference server; its normalised shapes are snapshotted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from conformance.catalog import ITEMS
from conformance.check import Item, Kind, RequestSpec, Target
from conformance.client import send
from conformance.exchange import Exchange
from conformance.findings import ConformanceFailure, Finding
from conformance.shape import shape
from reference_server.embedded import SuiteServer, serve_for_suite
from reference_server.engine import Engine
from tests.conftest import TEST_THREADS

LIVE_ITEMS = [item for item in ITEMS if item.kind is Kind.API and item.covered]
LIVE_IDS = [item.id.replace("/", "__") for item in LIVE_ITEMS]
"""Test ids double as snapshot file names, so no slash."""

Outcome = dict[str, tuple[list[Exchange], list[Finding]]]


@pytest.fixture(scope="module")
def reference_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(180.0, connect=10.0)) as client:
        yield client


@pytest.fixture(scope="module")
def suite_server(reference_engine: Engine) -> Iterator[SuiteServer]:
    """The reference server as `conformance run` starts it (second model, preset, token, remote MCP)."""
    with serve_for_suite(threads=TEST_THREADS) as server:
        yield server


@pytest.fixture(scope="module")
def run_item(
    suite_server: SuiteServer,
    reference_model_id: str,
    reference_client: httpx.Client,
    plan_runner: Callable[..., list[Exchange]],
) -> Callable[[Item], Outcome]:
    """Runs an item's checks once per module (the pass test and the snapshot test share the result).

    To keep the suite fast, a request identical to one an earlier check sent reuses that exchange; within
    one check every request is really sent (so `seeded-repeatable` still asks twice).
    """
    server = suite_server
    target = Target(server.url, reference_model_id, api_key=server.api_key, preset=server.preset)
    cache: dict[str, Outcome] = {}
    sent: dict[str, Exchange] = {}

    def run(item: Item) -> Outcome:
        if item.id not in cache:
            outcome: Outcome = {}
            for check in item.checks:
                used: set[str] = set()

                def server(spec: RequestSpec, used: set[str] = used) -> Exchange:
                    time.sleep(spec.wait)  # a poll's interval, as the runner waits it
                    body = spec.body.decode() if isinstance(spec.body, bytes) else spec.body
                    key = json.dumps([spec.method, spec.path, body], sort_keys=True)
                    if key not in sent or key in used:
                        sent[key] = send(reference_client, target, spec)
                    used.add(key)
                    return sent[key]

                exchanges = plan_runner(check, server, target)
                outcome[check.id] = (exchanges, list(check.verdict(exchanges)))
            cache[item.id] = outcome
        return cache[item.id]

    return run


@pytest.mark.parametrize("item", LIVE_ITEMS, ids=LIVE_IDS)
def test_reference_server_passes(item: Item, run_item: Callable[[Item], Outcome]) -> None:
    findings = [f for _, found in run_item(item).values() for f in found]
    if findings:
        raise ConformanceFailure(findings)


@pytest.mark.parametrize("item", LIVE_ITEMS, ids=LIVE_IDS)
def test_reference_shapes(item: Item, run_item: Callable[[Item], Outcome], snapshot: SnapshotAssertion) -> None:
    shapes: dict[str, Any] = {}
    for check in item.checks:
        exchanges, _ = run_item(item)[check.id]
        shapes[check.id] = (check.shape or shape)(exchanges)
    assert shapes == snapshot(extension_class=JSONSnapshotExtension)
