"""Incremental server-sent events parser that keeps what a WHATWG client would drop."""

from __future__ import annotations

import codecs
import re

from conformance.exchange import SSEEvent

__all__ = ["SSEParser", "field_lines", "parse_sse"]

_LINE_END = re.compile(r"\r\n|\r|\n")


class SSEParser:
    """Feed raw bytes as they arrive; get back each event block once its blank line has arrived.

    Lines end at CRLF, LF or CR (a CR at the end of one chunk followed by LF at the start of the
    next is one line end). Unlike a client, blocks without `data:` (comments, `error:` fields) are
    kept, with `data=None`, so that a verdict can name them.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._block: list[str] = []
        self._started = False
        self._pending_cr = False

    def feed(self, chunk: bytes, t_ms: float) -> list[SSEEvent]:
        return self._feed_text(self._decoder.decode(chunk), t_ms)

    def close(self, t_ms: float) -> str:
        """End of stream: returns the text of an event that was never terminated ("" when none)."""
        self._feed_text(self._decoder.decode(b"", final=True), t_ms)
        tail = "\n".join([*self._block, self._buffer]) if self._buffer else "\n".join(self._block)
        self._block, self._buffer = [], ""
        return tail

    def _feed_text(self, text: str, t_ms: float) -> list[SSEEvent]:
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = False
        events: list[SSEEvent] = []
        data = self._buffer + text
        start = 0
        for match in _LINE_END.finditer(data):
            if match.group() == "\r" and match.end() == len(data):
                self._pending_cr = True  # its LF, if any, starts the next chunk
            event = self._line(data[start : match.start()], t_ms)
            if event is not None:
                events.append(event)
            start = match.end()
        self._buffer = data[start:]
        return events

    def _line(self, line: str, t_ms: float) -> SSEEvent | None:
        if line:
            self._block.append(line)
            return None
        if not self._block:
            return None
        block, self._block = self._block, []
        return _event(block, t_ms)


def _event(lines: list[str], t_ms: float) -> SSEEvent:
    event: str | None = None
    data: list[str] = []
    for name, value in field_lines(lines):
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    return SSEEvent(t_ms=t_ms, event=event, data="\n".join(data) if data else None, raw="\n".join(lines))


def field_lines(lines: list[str]) -> list[tuple[str, str]]:
    """(field, value) pairs of an event block's lines, comments left out, per the WHATWG rules."""
    fields = []
    for line in lines:
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        fields.append((name, value))
    return fields


def parse_sse(body: bytes) -> tuple[list[SSEEvent], str]:
    """Parse a whole stream at once (all events at t_ms 0): the events and any unterminated tail."""
    parser = SSEParser()
    events = parser.feed(body, 0.0)
    return events, parser.close(0.0)
