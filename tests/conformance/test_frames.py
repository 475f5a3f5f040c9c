"""frames_of: the data events of a stream as typed JSON objects, with what is wrong with the others."""

from __future__ import annotations

from conformance.exchange import SSEEvent
from conformance.verdicts.frames import Frame, frames_of


def _event(data: str | None, name: str | None = None) -> SSEEvent:
    return SSEEvent(t_ms=0.0, event=name, data=data, raw="")


def test_frames_keep_positions_names_and_problems() -> None:
    events = [
        _event('{"type": "chat.start"}', "chat.start"),
        _event(None),  # a comment: no data, no frame
        _event("[1, 2]"),
        _event("{not json"),
        _event('{"type": 3}'),
    ]
    found = frames_of(events)
    assert [(f.chunk, f.name, f.type) for f in found] == [
        (0, "chat.start", "chat.start"),
        (2, None, None),
        (3, None, None),
        (4, None, None),
    ]
    assert found[1].problem == "a JSON list, not an object"
    assert found[2].problem is not None
    assert found[2].problem.startswith("not JSON")
    assert found[3] == Frame(4, None, {"type": 3})
    assert frames_of(None) == []
