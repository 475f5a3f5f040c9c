"""Verdict of 0.3.9/ttl on a JIT-load sequence: a model loaded by a request with `ttl` unloads when idle, then reloads.

The sequence, as the check's plan sends it (and as any recording of the same steps shows it):
GET /api/v0/models (pick an LLM row whose `state` is `not-loaded`), a request naming it with `ttl`, polls of
GET /api/v0/models/{id} until its `state` turns `not-loaded`, a next request naming it, one more poll. These
functions are pure: they read the exchanges, never the clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conformance.exchange import Exchange
from conformance.findings import Finding
from conformance.verdicts import items
from conformance.verdicts.context import excerpt

__all__ = [
    "LISTING",
    "LOADED",
    "NOT_LOADED",
    "SIZES",
    "jit_candidate",
    "jit_candidates",
    "row_path",
    "row_state",
    "ttl_findings",
    "ttl_not_exercised",
    "ttl_shape",
]

LISTING = "/api/v0/models"
SIZES = "/api/v1/models"
"""LM Studio's native list: its `size_bytes` picks the smallest model to JIT-load."""
LOADED = "loaded"
NOT_LOADED = "not-loaded"
_STATES = (LOADED, NOT_LOADED)
_LLM_TYPES = ("llm", "vlm")


def row_path(model: str) -> str:
    return f"{LISTING}/{model}"


def jit_candidates(listing: Exchange | None) -> list[str]:
    """The ids of the LLM/VLM rows of a GET /api/v0/models answer whose `state` is `not-loaded`, in its order."""
    return [
        str(row["id"])
        for row in _rows(listing)
        if row.get("type") in _LLM_TYPES and row.get("state") == NOT_LOADED and isinstance(row.get("id"), str)
    ]


def jit_candidate(listing: Exchange | None, sizes: Exchange | None = None) -> str | None:
    """The model to JIT-load: the smallest candidate by the `size_bytes` of a GET /api/v1/models answer (loading
    a real server's biggest model would take long), the first listed when sizes are unknown; None without one."""
    candidates = jit_candidates(listing)
    size = _sizes(sizes)
    ranked = sorted(enumerate(candidates), key=lambda pair: (size.get(pair[1], float("inf")), pair[0]))
    return ranked[0][1] if ranked else None


def row_state(exchange: Exchange | None) -> Any:
    """The `state` of a GET /api/v0/models/{id} answer (None without a 2xx JSON row)."""
    if exchange is None or exchange.response is None or not exchange.ok:
        return None
    body = exchange.response.body
    return body.get("state") if isinstance(body, dict) else None


def ttl_not_exercised(exchanges: Sequence[Exchange]) -> str | None:
    """Why the exchanges could not show an idle unload (None when a JIT load with `ttl` was tried)."""
    listing = exchanges[0] if exchanges and _is_listing(exchanges[0]) else None
    if listing is None or listing.response is None:
        return f"GET {LISTING} was not asked"
    if not listing.ok:
        return (
            f"GET {LISTING} answered {listing.response.status}: the server shows no model state, so an idle unload "
            "cannot be observed (only the acceptance of `ttl` was checked)"
        )
    rows = _rows(listing)
    if not any("state" in row for row in rows):
        return f"GET {LISTING} gives no `state`, so an idle unload cannot be observed"
    if not jit_candidates(listing):
        return "every model is loaded, none can be JIT-loaded"
    return None


def ttl_findings(exchanges: Sequence[Exchange], *, ttl: float, check: str) -> list[Finding]:
    """What the JIT-load sequence shows wrong: a failed load or reload, a wrong `state`, no unload after the TTL."""
    listing = exchanges[0] if exchanges and _is_listing(exchanges[0]) else None
    sizes = exchanges[1] if len(exchanges) > 1 and _is_sizes(exchanges[1]) else None
    model = jit_candidate(listing, sizes)
    if model is None:
        return []
    return list(_Walk(model, ttl, check, exchanges).findings())


@dataclass
class _Walk:
    model: str
    ttl: float
    check: str
    exchanges: Sequence[Exchange]

    def findings(self) -> Iterator[Finding]:
        steps = list(enumerate(self.exchanges))[1:]
        requests = [(i, e) for i, e in steps if e.request.method == "POST"]
        if not requests:
            return
        first, *later = requests
        yield from self._answered(first, f"the request naming not-loaded model {self.model!r} with `ttl` failed")
        if not first[1].ok:
            return
        reload = later[0] if later else None
        end = reload[0] if reload else len(self.exchanges)
        polls = [(i, e) for i, e in steps if first[0] < i < end and e.request.method == "GET"]
        yield from self._polls(polls)
        if polls:
            yield from self._loaded_after(first, polls[0], "right after answering a request naming it")
        unloaded = next(((i, e) for i, e in polls if row_state(e) == NOT_LOADED), None)
        if unloaded is None:
            if polls and row_state(polls[-1][1]) == LOADED:  # else a broken poll, reported above, ended the wait
                yield self._never_unloaded(first, polls[-1])
            return
        if reload is None:
            return
        yield from self._answered(
            reload, f"after its idle unload, the next request naming {self.model!r} failed: it must load it again"
        )
        after = [(i, e) for i, e in steps if i > reload[0] and e.request.method == "GET"]
        yield from self._polls(after)
        if reload[1].ok and after:
            yield from self._loaded_after(reload, after[0], "after the next request loaded it again")

    def _answered(self, step: tuple[int, Exchange], message: str) -> Iterator[Finding]:
        index, exchange = step
        response = exchange.response
        if response is not None and not exchange.ok:
            yield self._finding(
                f"{message}: {response.status} {_error_text(response.body)}",
                index,
                expected="2xx",
                seen=response.status,
            )

    def _polls(self, polls: Sequence[tuple[int, Exchange]]) -> Iterator[Finding]:
        for index, exchange in polls:
            response = exchange.response
            if response is None:
                continue
            if not exchange.ok or not isinstance(response.body, dict):
                yield self._finding(
                    f"GET {row_path(self.model)} answered {response.status} without a model row; the model's "
                    "`state` cannot be read",
                    index,
                    expected=f"200 with the row of {self.model!r}",
                    seen=response.status,
                )
            elif response.body.get("state") not in _STATES:
                yield self._finding(
                    f"the row of {self.model!r} has `state` {response.body.get('state')!r}",
                    index,
                    pointer="/state",
                    expected=list(_STATES),
                    seen=response.body.get("state"),
                )

    def _loaded_after(self, request: tuple[int, Exchange], poll: tuple[int, Exchange], when: str) -> Iterator[Finding]:
        index, exchange = poll
        state = row_state(exchange)
        if state not in _STATES or state == LOADED:
            return
        idle = _seconds_between(request[1], exchange)
        if idle is not None and idle >= self.ttl:
            return  # the poll came after the TTL: `not-loaded` may be right, nothing to judge
        yield self._finding(
            f"{when}, the row of {self.model!r} says `state` {state!r}: a model that serves requests is loaded",
            index,
            pointer="/state",
            expected=LOADED,
            seen=state,
        )

    def _never_unloaded(self, request: tuple[int, Exchange], poll: tuple[int, Exchange]) -> Finding:
        index, last = poll
        idle = _seconds_between(request[1], last)
        polls = sum(1 for e in self.exchanges[request[0] + 1 : index + 1] if e.request.method == "GET")
        waited = f"{idle:.0f} s" if idle is not None else f"{polls} polls"
        return self._finding(
            f"{self.model!r} was JIT-loaded by a request with `ttl` {self.ttl:g} but its row still said "
            f"`state` {LOADED!r} {waited} after that request ended: the idle TTL did not unload it",
            index,
            pointer="/state",
            expected=NOT_LOADED,
            seen=LOADED,
        )

    def _finding(
        self, message: str, index: int, *, pointer: str | None = None, expected: Any = None, seen: Any = None
    ) -> Finding:
        exchange = self.exchanges[index]
        body = None if exchange.response is None else exchange.response.body
        return Finding(
            item=items.TTL,
            check=self.check,
            message=message,
            endpoint=exchange.endpoint,
            exchange=index,
            raw=excerpt(body),
            pointer=pointer,
            expected=expected,
            seen=seen,
        )


def ttl_shape(exchanges: Sequence[Exchange]) -> list[Any]:
    """The sequence's fingerprint without timing: each step's kind and status, repeated poll states collapsed."""
    steps: list[Any] = []
    for exchange in exchanges:
        status = None if exchange.response is None else exchange.response.status
        if _is_listing(exchange):
            step: Any = ["list", status]
        elif _is_sizes(exchange):
            step = ["sizes", status]
        elif exchange.request.method == "POST":
            step = ["request", status, "ttl" in exchange.request.json]
        else:
            step = ["state", status, row_state(exchange)]
        if not steps or steps[-1] != step or step[0] != "state":
            steps.append(step)
    return steps


def _is_listing(exchange: Exchange) -> bool:
    return exchange.request.method == "GET" and exchange.endpoint.rstrip("/") == LISTING


def _is_sizes(exchange: Exchange) -> bool:
    return exchange.request.method == "GET" and exchange.endpoint.rstrip("/") == SIZES


def _sizes(answer: Exchange | None) -> dict[str, float]:
    """Model key -> `size_bytes` from a GET /api/v1/models answer (`{"models": [...]}`); empty without one."""
    if answer is None or answer.response is None or not answer.ok or not isinstance(answer.response.body, dict):
        return {}
    models = answer.response.body.get("models")
    rows = [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []
    return {
        str(m["key"]): float(m["size_bytes"])
        for m in rows
        if isinstance(m.get("key"), str) and isinstance(m.get("size_bytes"), int | float)
    }


def _rows(listing: Exchange | None) -> list[dict[str, Any]]:
    if listing is None or listing.response is None or not listing.ok:
        return []
    body = listing.response.body
    data = body.get("data") if isinstance(body, dict) else None
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


def _seconds_between(request: Exchange, later: Exchange) -> float | None:
    """Seconds from the end of `request` to the start of `later` (None when the exchanges carry no times)."""
    try:
        ended = datetime.fromisoformat(request.started_at).timestamp() + request.duration_ms / 1000
        return datetime.fromisoformat(later.started_at).timestamp() - ended
    except ValueError:
        return None


def _error_text(body: Any) -> str:
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message", error) if isinstance(error, dict) else error
    return str(message)[:200]
