"""A rule: one request-conditional requirement on one exchange, tagged with the changelog item it enforces."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from conformance import schemas
from conformance.findings import Finding
from conformance.verdicts.context import Context, Endpoint, Issue

__all__ = ["ALL_ENDPOINTS", "CHAT_LIKE", "Judge", "Rule", "rule", "schema_issues"]

Judge = Callable[[Context], Iterable[Issue]]

ALL_ENDPOINTS = frozenset(Endpoint)
CHAT_LIKE = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})
"""Endpoints that answer with choices and may stream."""


@dataclass(frozen=True)
class Rule:
    id: str
    """Names the rule in findings (`Finding.check`), e.g. `tool-call-name-once`."""
    item: str
    """The changelog item it enforces (an issue may name a more specific one)."""
    endpoints: frozenset[Endpoint]
    judge: Judge
    doc: str

    def applies(self, ctx: Context) -> bool:
        return ctx.endpoint is not None and ctx.endpoint in self.endpoints

    def findings(self, ctx: Context) -> list[Finding]:
        """The rule's findings on one exchange (empty when it passes or does not apply)."""
        if not self.applies(ctx):
            return []
        return [
            issue.finding(item=self.item, check=self.id, endpoint=ctx.exchange.endpoint, raw=ctx.raw_of(issue))
            for issue in _collapse(list(self.judge(ctx)))
        ]


def rule(rule_id: str, item: str, endpoints: Iterable[Endpoint]) -> Callable[[Judge], Rule]:
    """Decorator turning a judge function into a Rule; its docstring becomes the rule's description."""

    def wrap(judge: Judge) -> Rule:
        return Rule(rule_id, item, frozenset(endpoints), judge, (judge.__doc__ or "").strip())

    return wrap


def schema_issues(
    schema: schemas.Schema, instance: object, what: str, *, chunk: int | None = None, at: str = ""
) -> Iterator[Issue]:
    """One issue per way `instance` (`what`, at pointer `at` of its body or event) breaks `schema`."""
    for error in schemas.errors(schema, instance):
        yield Issue(
            f"{what} breaks the `{schema.value}` schema: {error.message}",
            chunk=chunk,
            pointer=at + error.pointer,
            expected=error.constraint,
        )


def _collapse(issues: list[Issue]) -> list[Issue]:
    """One issue per distinct problem: repeats of the same message on later chunks are counted, not listed."""
    groups: dict[tuple[str, str | None, int | None], list[Issue]] = {}
    for issue in issues:
        groups.setdefault((issue.message, issue.item, issue.exchange), []).append(issue)
    out = []
    for group in groups.values():
        first = group[0]
        if len(group) > 1:
            chunks = [f"#{i.chunk}" for i in group if i.chunk is not None]
            where = f" in chunks {', '.join(chunks[:8])}{', ...' if len(chunks) > 8 else ''}" if chunks else ""
            first = replace(first, message=f"{first.message} [{len(group)} times{where}]")
        out.append(first)
    return out
