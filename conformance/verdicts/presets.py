"""Rules of 0.3.14/presets: a request naming a preset the server cannot have is refused, never served."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from conformance.verdicts import items
from conformance.verdicts.answer import answer
from conformance.verdicts.context import Context, Issue
from conformance.verdicts.rule import ALL_ENDPOINTS, Rule, rule

__all__ = ["RULES", "UNKNOWN_PRESET_PREFIX", "names_unknown_preset"]

UNKNOWN_PRESET_PREFIX = "llm-conformance-no-such-preset-"
"""The suite's name for a preset no server has (a random suffix follows); recordings of it are judged too."""


def names_unknown_preset(request: dict[str, Any]) -> bool:
    """Whether the request names the suite's preset that cannot exist."""
    preset = request.get("preset")
    return isinstance(preset, str) and preset.startswith(UNKNOWN_PRESET_PREFIX)


def _shown(ctx: Context) -> Any:
    """What the server answered, for the finding: the answer's text when it is one, else the body."""
    found = answer(ctx) if ctx.ok else None
    if found is not None and found.content:
        return found.content[:200]
    return ctx.body


@rule("unknown-preset-refused", items.PRESETS, ALL_ENDPOINTS)
def unknown_preset_refused(ctx: Context) -> Iterator[Issue]:
    """A request naming a preset the server does not have gets a 4xx error, not an answer that ignores it."""
    if ctx.response is None or not names_unknown_preset(ctx.request):
        return
    preset = ctx.request["preset"]
    status = ctx.response.status
    if status < 400:
        yield Issue(
            f"the request names preset {preset!r}, which cannot exist, and got {status}: the server ignored the "
            "preset instead of refusing it (LM Studio's changelog: presets can be named in requests)",
            pointer="/preset",
            expected="a 4xx error naming the unknown preset",
            seen=_shown(ctx),
        )
    elif status >= 500:
        yield Issue(
            f"an unknown preset {preset!r} is a client error, but the server answered {status}",
            expected="4xx",
            seen=ctx.body,
        )
    elif not (isinstance(ctx.body, dict) and "error" in ctx.body):
        yield Issue(
            f"the unknown preset {preset!r} was refused with {status} but without an error body saying why",
            expected='{"error": {...}}',
            seen=ctx.body,
        )


RULES: tuple[Rule, ...] = (unknown_preset_refused,)
