"""0.3.14/presets: a request naming an unknown preset is refused; with `--preset NAME`, naming it changes the answer.

The changelog says only that "RESTful API and SDKs support specifying presets in requests"; the field is
`preset` (lmstudio-js's prediction option of that name, which LM Studio's REST server reads too), holding a
preset's identifier such as `@local:NAME`.
"""

from __future__ import annotations

import secrets
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
from typing import Any

from conformance.catalog import requests as rq
from conformance.catalog.exercised import answered
from conformance.catalog.expect import Expectation, make_check
from conformance.check import LMSTUDIO, Check, Item, Kind, RequestSpec, Target
from conformance.exchange import Exchange
from conformance.findings import Finding
from conformance.verdicts import Context, Issue, answer
from conformance.verdicts import items as ids
from conformance.verdicts.presets import UNKNOWN_PRESET_PREFIX, names_unknown_preset
from conformance.verdicts.usage import usage_numbers

__all__ = ["PRESETS", "preset_accepted", "preset_applied"]

_PROMPT = "Say hello."
_MAX_TOKENS = 24


def _unknown_preset(target: Target) -> RequestSpec:
    return rq.chat(_PROMPT, preset=UNKNOWN_PRESET_PREFIX + secrets.token_hex(4))(target)


def _probe_answered(exchanges: Sequence[Exchange]) -> str | None:
    """The request named the unknown preset and got a response (the rule judges which)."""
    ctx = Context(exchanges[0])
    if not names_unknown_preset(ctx.request):
        return "the request names no preset that cannot exist"
    if ctx.response is None:
        return f"no response ({ctx.exchange.error})"
    return None


def _plain(preset: str | None) -> rq.RequestFactory:
    """The seeded temperature-0 chat request (bounded as every plan's: a preset's own output limit cannot show)."""

    def build(target: Target) -> RequestSpec:
        body: dict[str, Any] = {
            "model": target.model,
            "messages": [{"role": "user", "content": _PROMPT}],
            "temperature": 0,
            "seed": rq.SEED,
            "max_tokens": _MAX_TOKENS,
        }
        if preset is not None:
            body["preset"] = preset
        return RequestSpec("POST", rq.CHAT, body=body)

    return build


def _named(target: Target) -> RequestSpec:
    return _plain(target.preset)(target)


def _fingerprint(ctx: Context) -> dict[str, Any] | None:
    found = answer(ctx) if ctx.ok else None
    if found is None or found.error is not None:
        return None
    numbers = usage_numbers(found.usage)
    return {
        "content": found.content,
        "finish_reason": found.finish_reason,
        "usage": None if numbers is None else dict(zip(("prompt_tokens", "completion_tokens"), numbers, strict=False)),
    }


def _comparable(exchanges: Sequence[Exchange]) -> str | None:
    """The two requests without the preset got the same answer and usage, so the one with it can be compared."""
    if not exchanges:
        return "no --preset given"
    reason = answered(0, 2)(exchanges)
    if reason is not None:
        return f"the request without the preset: {reason}"
    if Context(exchanges[1]).response is None:
        return f"no response to the request naming the preset ({exchanges[1].error})"
    if _fingerprint(Context(exchanges[0])) != _fingerprint(Context(exchanges[2])):
        return (
            "the same seeded temperature-0 request without the preset got two different answers, so the preset's "
            "effect cannot be told apart"
        )
    return None


def preset_accepted(index: int) -> Expectation:
    """The request naming the run's preset (`--preset`) is answered, not refused."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        ctx = contexts[index]
        if ctx.response is not None and not ctx.ok:
            yield Issue(
                f"the server refused the request naming preset {ctx.request.get('preset')!r} with {ctx.status}; "
                "--preset must name a preset the server has (LM Studio: its identifier, e.g. @local:NAME)",
                exchange=index,
                pointer="/preset",
                expected="2xx",
                seen=ctx.body,
            )

    return judge


def preset_applied(without: int, named: int) -> Expectation:
    """The answer to the request naming the preset differs from the one without it (text, finish or usage)."""

    def judge(contexts: Sequence[Context]) -> Iterator[Issue]:
        plain, with_preset = _fingerprint(contexts[without]), _fingerprint(contexts[named])
        if plain is None or with_preset is None or plain != with_preset:
            return
        yield Issue(
            f"naming preset {contexts[named].request.get('preset')!r} changed nothing: the answer, its finish_reason "
            "and its usage equal those of the same request without it, so the server ignored the preset's "
            "settings (LM Studio 0.3.39 applies only a preset's structured output, lmstudio-bug-tracker#1389)",
            exchange=named,
            expected="an answer or usage that differs from the request without the preset",
            seen=with_preset,
        )

    return judge


def _when_preset_given(check: Check) -> Check:
    """The check, sending nothing when the run names no preset (it is then `skip` "not exercised")."""

    def plan(target: Target) -> Generator[RequestSpec, Exchange, None]:
        if target.preset is not None:
            yield from check.plan(target)

    def verdict(exchanges: Sequence[Exchange]) -> list[Finding]:
        return list(check.verdict(exchanges)) if exchanges else []

    return replace(check, plan=plan, verdict=verdict)


PRESETS = Item(
    id=ids.PRESETS,
    version="0.3.14",
    title="Presets named in API requests (`preset`): an unknown one refused, a known one (--preset) applied",
    kind=Kind.API,
    endpoints=(rq.CHAT,),
    extension=LMSTUDIO,
    checks=(
        make_check(
            ids.PRESETS,
            "unknown-preset-refused",
            "A chat request naming a preset no server has gets a 4xx error, not an answer that ignores it",
            [_unknown_preset],
            exercised=_probe_answered,
        ),
        _when_preset_given(
            make_check(
                ids.PRESETS,
                "named-preset-applies",
                "With --preset NAME: the seeded temperature-0 request naming it is answered, and its answer or usage "
                "differs from the same request without it (sent twice, to show the difference is the preset's)",
                [_plain(None), _named, _plain(None)],
                preset_accepted(1),
                preset_applied(0, 1),
                exercised=_comparable,
            )
        ),
    ),
)
