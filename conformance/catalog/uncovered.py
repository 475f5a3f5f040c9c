"""Items without checks: CLI features (skipped) and API items not built yet (reported not_covered, never pass)."""

from __future__ import annotations

from conformance.check import ANTHROPIC, LMSTUDIO, RESPONSES, Item, Kind

__all__ = ["CLI_SKIP_REASON", "UNCOVERED_ITEMS"]

CLI_SKIP_REASON = "CLI feature, not an HTTP API"


def _cli(item_id: str, version: str, title: str) -> Item:
    return Item(id=item_id, version=version, title=title, kind=Kind.CLI, skip_reason=CLI_SKIP_REASON)


def _api(item_id: str, version: str, title: str, *endpoints: str) -> Item:
    return Item(
        id=item_id, version=version, title=title, kind=Kind.API, endpoints=endpoints, extension=_surface(endpoints)
    )


def _surface(endpoints: tuple[str, ...]) -> str | None:
    """The extension an item's endpoints belong to (None for OpenAI's own chat/models routes)."""
    if any(e.startswith("/api/") for e in endpoints):
        return LMSTUDIO
    if "/v1/messages" in endpoints:
        return ANTHROPIC
    if "/v1/responses" in endpoints:
        return RESPONSES
    return None


UNCOVERED_ITEMS: dict[str, Item] = {
    i.id: i
    for i in (
        _cli("0.3.5/lms-get", "0.3.5", "`lms get` downloads models from the terminal (keyword or Hugging Face URL)"),
        _cli("0.3.26/lms-log-stream", "0.3.26", "`lms log stream` with --source server/model, filters, --json"),
        _cli("0.3.27/lms-load-estimate-only", "0.3.27", "`lms load --estimate-only` prints memory estimates"),
        _cli("0.3.27/lms-chat-interrupt", "0.3.27", "`lms chat`: Ctrl+C interrupts an ongoing prediction"),
        _cli("0.3.27/lms-ps-json", "0.3.27", "`lms ps --json` reports generation status and queued requests"),
        _cli("0.3.29/lms-ls-variants", "0.3.29", "`lms ls --variants` lists the variants of multi-variant models"),
    )
}
