"""Incremental text filters applied to generated text: stop strings and <think> reasoning splitting."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum

__all__ = ["Channel", "StopScanner", "ThinkSplitter", "split_reasoning"]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def _held_suffix(text: str, needles: Iterable[str]) -> int:
    """Length of the longest suffix of text that is a proper prefix of one of the needles."""
    longest = 0
    for needle in needles:
        for size in range(min(len(needle) - 1, len(text)), longest, -1):
            if text.endswith(needle[:size]):
                longest = size
                break
    return longest


class StopScanner:
    """Cuts generated text at the first stop string, holding back text that may be the start of one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._held = ""
        self.matched: str | None = None
        """The stop string that ended the text, once one has."""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text safe to emit now, and whether a stop string was reached (then nothing more may be emitted)."""
        if not self._stops:
            return text, False
        buffer = self._held + text
        found = [(index, stop) for stop in self._stops if (index := buffer.find(stop)) >= 0]
        if found:
            cut, self.matched = min(found, key=lambda hit: hit[0])
            self._held = ""
            return buffer[:cut], True
        keep = _held_suffix(buffer, self._stops)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """The held-back text, at the end of generation when no stop string completed."""
        held, self._held = self._held, ""
        return held


class Channel(StrEnum):
    """Where a piece of assistant text goes in the response."""

    CONTENT = "content"
    REASONING = "reasoning_content"


class ThinkSplitter:
    """Routes text inside <think>...</think> to the reasoning channel, the rest to content, as it streams."""

    def __init__(self) -> None:
        self._inside = False
        self._held = ""

    def feed(self, text: str) -> list[tuple[Channel, str]]:
        out: list[tuple[Channel, str]] = []
        buffer = self._held + text
        while buffer:
            tag = THINK_CLOSE if self._inside else THINK_OPEN
            channel = Channel.REASONING if self._inside else Channel.CONTENT
            index = buffer.find(tag)
            if index >= 0:
                if index:
                    out.append((channel, buffer[:index]))
                buffer = buffer[index + len(tag) :]
                self._inside = not self._inside
                continue
            keep = _held_suffix(buffer, (tag,))
            if len(buffer) > keep:
                out.append((channel, buffer[: len(buffer) - keep]))
            self._held = buffer[len(buffer) - keep :] if keep else ""
            return out
        self._held = ""
        return out

    def flush(self) -> list[tuple[Channel, str]]:
        held, self._held = self._held, ""
        return [(Channel.REASONING if self._inside else Channel.CONTENT, held)] if held else []


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, content) of a whole text: what ThinkSplitter yields when fed everything at once."""
    splitter = ThinkSplitter()
    parts = [*splitter.feed(text), *splitter.flush()]
    reasoning = "".join(piece for channel, piece in parts if channel is Channel.REASONING)
    content = "".join(piece for channel, piece in parts if channel is Channel.CONTENT)
    return reasoning, content
