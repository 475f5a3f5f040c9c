"""The shape of the catalog: changelog items, their checks, request plans and statuses."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conformance.exchange import Exchange
from conformance.findings import Finding

__all__ = [
    "ANTHROPIC",
    "EXTENSIONS",
    "LMSTUDIO",
    "RESPONSES",
    "Check",
    "Exercised",
    "Item",
    "Kind",
    "Plan",
    "RequestSpec",
    "Status",
    "Target",
    "Verdict",
    "send_all",
]


LMSTUDIO = "lmstudio"
ANTHROPIC = "anthropic"
RESPONSES = "responses"
EMBEDDINGS = "embeddings"
EXTENSIONS = (LMSTUDIO, ANTHROPIC, RESPONSES, EMBEDDINGS)
"""The values of `Item.extension` (and of `--expect`)."""


class Kind(StrEnum):
    API = "api"
    MODEL_SPECIFIC = "model-specific"
    CLI = "cli"


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"
    NOT_COVERED = "not_covered"


@dataclass(frozen=True)
class Target:
    """What a plan may need to know about the server under test."""

    base_url: str
    model: str
    server: str | None = None
    """Server name and version when the server tells (`Server` header, `/v1/models` owner)."""
    api_key: str | None = None
    expect: frozenset[str] = frozenset()
    """Surfaces the run requires (`--expect lmstudio`): a missing one fails instead of skipping."""
    preset: str | None = None
    """A preset the server has (`--preset NAME`), for 0.3.14/presets to show that naming it applies it."""

    def expects(self, extension: str) -> bool:
        """Whether a missing `extension` is a failure: asked for, or LM Studio's own on LM Studio."""
        if extension in self.expect:
            return True
        server = (self.server or "").lower().replace(" ", "")
        return extension == LMSTUDIO and ("lmstudio" in server or server == "organization_owner")


@dataclass(frozen=True)
class RequestSpec:
    """One request a check sends; `path` is appended to the target's base URL."""

    method: str
    path: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: bool = True
    """Send the target's API key (False for checks that probe authentication)."""
    wait: float = 0.0
    """Seconds the runner waits before sending (a poll's interval), so that plans stay free of I/O and clocks."""


Plan = Callable[[Target], Generator[RequestSpec, Exchange, None]]
"""A generator function: yields each request, receives its exchange, so later requests can use
earlier answers (a stored response id, say). It does no I/O itself."""

Verdict = Callable[[Sequence[Exchange]], Iterable[Finding]]
"""Pure function over the exchanges a plan produced: no I/O, usable on proxy recordings."""

Exercised = Callable[[Sequence[Exchange]], str | None]
"""Pure function over a check's exchanges: None when they show the feature the check is about (a tool call
for a `$defs` check, two calls for a parallel one), else why not ("no tool call was returned"). A check
whose exchanges did not exercise its feature is `skip` "not exercised: <why>", never `pass`."""


def send_all(*specs: Callable[[Target], RequestSpec] | RequestSpec) -> Plan:
    """A plan that sends fixed requests in order (each may be a function of the target)."""

    def plan(target: Target) -> Generator[RequestSpec, Exchange, None]:
        for spec in specs:
            yield spec(target) if callable(spec) else spec

    return plan


@dataclass(frozen=True)
class Check:
    id: str
    """Unique within its item, e.g. `usage-chunk-when-asked`; public contract."""
    item: str
    title: str
    plan: Plan
    verdict: Verdict
    shape: Callable[[Sequence[Exchange]], Any] | None = None
    """Normalised fingerprint of what was seen (no ids, times or text); None for the default."""
    exercised: Exercised | None = None
    """What the exchanges must show for the check's feature to count as tried; None: any answer does."""


@dataclass(frozen=True)
class Item:
    """One entry of LM Studio's API changelog (or a `base/*` fundamental)."""

    id: str
    version: str
    title: str
    kind: Kind
    endpoints: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    skip_reason: str | None = None
    """Why the item is never run (CLI features); it reports `skip` with this reason."""
    model_families: tuple[str, ...] = ()
    """For model-specific items: run only when the target's model id contains one of these."""
    extension: str | None = None
    """The API surface the item belongs to when not every OpenAI-compatible server has it: `lmstudio`
    (LM Studio's own routes and fields), `anthropic`, `responses`, `embeddings`. A server that does not implement it
    gets `skip` "not implemented by this server", unless the run expects that surface."""

    @property
    def covered(self) -> bool:
        return bool(self.checks)
