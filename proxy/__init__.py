"""Recording proxy: a mitmproxy addon that records, checks, diffs and replays LLM API traffic."""

from __future__ import annotations

__all__: list[str] = []
