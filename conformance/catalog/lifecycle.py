"""Items on the model lifecycle: JIT loading with an idle TTL (0.3.9) and the capabilities of listed models (0.3.16)."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from conformance.catalog import requests as rq
from conformance.catalog.exercised import all_of, answered
from conformance.catalog.expect import lists_models, make_check, succeeded
from conformance.check import LMSTUDIO, Check, Exercised, Item, Kind, RequestSpec, Target
from conformance.exchange import Exchange
from conformance.findings import Finding
from conformance.verdicts import Context, validate_contexts
from conformance.verdicts import items as ids
from conformance.verdicts.ttl import (
    LOADED,
    NOT_LOADED,
    SIZES,
    jit_candidate,
    jit_candidates,
    row_path,
    row_state,
    ttl_findings,
    ttl_not_exercised,
    ttl_shape,
)

__all__ = ["ACCEPTED_TTL", "LIFECYCLE_ITEMS", "POLL_INTERVAL", "TTL_SECONDS", "UNLOAD_DEADLINE", "lists_llm"]

TTL_SECONDS = 2
"""The `ttl` of the JIT-loading request: short, so that the idle unload comes soon."""
POLL_INTERVAL = 1.0
"""Seconds between two polls of the model's row."""
UNLOAD_DEADLINE = TTL_SECONDS + 60
"""Seconds of polling (not counting the polls themselves) before the model is declared never unloaded: generous,
as a loaded machine is slow. Each poll is an exchange, bounded by --exchange-timeout as any other."""
ACCEPTED_TTL = 300
"""The `ttl` of the request sent when the server shows no model state: only its acceptance is checked."""
_TTL_CHECK = "jit-load-ttl-unload"


def _jit_request(model: str) -> RequestSpec:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "temperature": 0,
        "seed": rq.SEED,
        "max_tokens": 4,
        "ttl": TTL_SECONDS,
    }
    return RequestSpec("POST", rq.CHAT, body=body)


def _ttl_plan(target: Target) -> Generator[RequestSpec, Exchange, None]:
    """List the models; JIT-load a not-loaded LLM (the smallest, when LM Studio's v1 list tells sizes) with `ttl`;
    poll its row until it unloads; request it again."""
    listing = yield RequestSpec("GET", rq.LMSTUDIO_MODELS)
    candidates = jit_candidates(listing)
    if not candidates:  # no state to watch: check only that `ttl` is accepted
        yield rq.chat("Say hello.", ttl=ACCEPTED_TTL)(target)
        return
    sizes = (yield RequestSpec("GET", SIZES)) if len(candidates) > 1 else None
    model = jit_candidate(listing, sizes) or candidates[0]
    loaded = yield _jit_request(model)
    if not loaded.ok:
        return
    row = yield RequestSpec("GET", row_path(model))
    waited = 0.0
    while row_state(row) == LOADED and waited < UNLOAD_DEADLINE:
        row = yield RequestSpec("GET", row_path(model), wait=POLL_INTERVAL)
        waited += POLL_INTERVAL
    if row_state(row) != NOT_LOADED:  # never unloaded, or no row to read: the verdict says which
        return
    again = yield _jit_request(model)
    if again.ok:
        yield RequestSpec("GET", row_path(model))


def _ttl_verdict(exchanges: Sequence[Exchange]) -> list[Finding]:
    return validate_contexts([Context(e) for e in exchanges]) + ttl_findings(
        exchanges, ttl=TTL_SECONDS, check=_TTL_CHECK
    )


_TTL = Item(
    id=ids.TTL,
    version="0.3.9",
    title="Idle TTL for models JIT-loaded by API requests (`ttl` in the request; `lms load --ttl` is CLI)",
    kind=Kind.API,
    endpoints=(rq.CHAT, rq.LMSTUDIO_MODELS),
    extension=LMSTUDIO,
    checks=(
        Check(
            id=_TTL_CHECK,
            item=ids.TTL,
            title=f"A not-loaded model named by a request with `ttl: {TTL_SECONDS}` is loaded, unloads after that "
            "idle time (its `state` in GET /api/v0/models/{id}), and the next request loads it again; without "
            "model state, `ttl` is only accepted",
            plan=_ttl_plan,
            verdict=_ttl_verdict,
            shape=ttl_shape,
            exercised=ttl_not_exercised,
        ),
    ),
)


def lists_llm(index: int) -> Exercised:
    """Exercised when the listing has an LLM or VLM row (those must carry `capabilities`)."""

    def judge(exchanges: Sequence[Exchange]) -> str | None:
        response = exchanges[index].response
        body = response.body if response is not None else None
        data = body.get("data") if isinstance(body, dict) else None
        rows = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
        if any(r.get("type", "llm") in ("llm", "vlm") for r in rows):
            return None
        return f"GET {rq.LMSTUDIO_MODELS} lists no LLM or VLM row (embedding rows need no `capabilities`)"

    return judge


_CAPABILITIES = Item(
    id=ids.MODEL_CAPABILITIES,
    version="0.3.16",
    title="GET /api/v0/models lists each LLM's `capabilities`",
    kind=Kind.API,
    endpoints=(rq.LMSTUDIO_MODELS,),
    extension=LMSTUDIO,
    checks=(
        make_check(
            ids.MODEL_CAPABILITIES,
            "capabilities-array",
            "Every LLM and VLM row of GET /api/v0/models has a `capabilities` array of strings (embedding rows may "
            "leave it out, as LM Studio 0.4.25 does)",
            [rq.get(rq.LMSTUDIO_MODELS)],
            succeeded(),
            lists_models(0),
            exercised=all_of(answered(), lists_llm(0)),
        ),
    ),
)

LIFECYCLE_ITEMS: dict[str, Item] = {i.id: i for i in (_TTL, _CAPABILITIES)}
