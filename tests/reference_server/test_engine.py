"""The engine's hand-over of events from its worker thread to the event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from reference_server.engine import _emitter


def test_events_emitted_while_the_loop_is_busy_arrive_in_order_with_one_wake_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> tuple[list[object], list[object], int]:
        loop = asyncio.get_running_loop()
        wake_ups = 0
        call_soon_threadsafe = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any) -> Any:
            nonlocal wake_ups
            wake_ups += 1
            return call_soon_threadsafe(callback, *args)

        monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
        events: asyncio.Queue[object] = asyncio.Queue()
        emit = _emitter(loop, events)
        worker = threading.Thread(target=lambda: [emit(index) for index in range(100)])
        worker.start()
        worker.join()  # blocks the loop: nothing is delivered until every event is emitted
        first = [await events.get() for _ in range(100)]
        emit("later")  # after the batch was delivered: a new wake-up
        second = [await events.get()]
        return first, second, wake_ups

    first, second, wake_ups = asyncio.run(main())
    assert first == list(range(100))
    assert second == ["later"]
    assert wake_ups == 2


def test_an_event_for_a_closed_loop_is_dropped() -> None:
    loop = asyncio.new_event_loop()
    events: asyncio.Queue[object] = asyncio.Queue()
    emit = _emitter(loop, events)
    loop.close()
    emit("nobody listens")
    assert events.empty()
