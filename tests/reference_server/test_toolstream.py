"""Streaming tool-call deltas from partial JSON: names once, argument fragments adding up exactly."""

from __future__ import annotations

import itertools
import json

import pytest

from reference_server.toolstream import ContentDelta, ToolCallDelta, ToolCallStream, dump_arguments, new_call_id

CALLS = [
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
    {"name": "get_weather", "arguments": {"city": 'Tōkyō "east"', "days": 15, "ratio": -1.5e-3}},
    {"name": "ping", "arguments": {}},
    {"name": "nested", "arguments": {"a": {"b": [1, 2, {"c": None}]}, "flag": True}},
]


def _run(text: str, *, step: int, wrapped: bool = False) -> list[ToolCallDelta | ContentDelta]:
    ids = (f"call_{n}" for n in itertools.count())
    stream = ToolCallStream(wrapped=wrapped, new_id=lambda: next(ids))
    deltas = []
    for start in range(0, len(text), step):
        deltas += stream.feed(text[start : start + step])
    return deltas + stream.finish()


def _assemble(deltas: list[ToolCallDelta | ContentDelta]) -> list[dict[str, str]]:
    calls: list[dict[str, str]] = []
    for delta in deltas:
        assert isinstance(delta, ToolCallDelta)
        if delta.id is not None:
            assert delta.index == len(calls)
            assert delta.name
            calls.append({"id": delta.id, "name": delta.name, "arguments": delta.arguments})
        else:
            assert delta.name is None
            calls[delta.index]["arguments"] += delta.arguments
    return calls


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("indent", [None, 2])
def test_fragments_add_up_to_the_final_arguments(step: int, indent: int | None) -> None:
    text = json.dumps(CALLS, indent=indent, ensure_ascii=False)
    calls = _assemble(_run(text, step=step))
    assert [call["name"] for call in calls] == [call["name"] for call in CALLS]
    assert [call["arguments"] for call in calls] == [dump_arguments(call["arguments"]) for call in CALLS]
    assert [json.loads(call["arguments"]) for call in calls] == [call["arguments"] for call in CALLS]
    assert len({call["id"] for call in calls}) == len(CALLS)


def test_arguments_stream_before_the_call_is_complete() -> None:
    stream = ToolCallStream(wrapped=False)
    deltas = stream.feed('[{"name": "get_weather", "arguments": {"city": "Par')
    assert isinstance(deltas[0], ToolCallDelta)
    assert deltas[0].name == "get_weather"
    assert "".join(d.arguments for d in deltas if isinstance(d, ToolCallDelta)) == '{"city":"Par'


def test_a_call_without_arguments_still_gets_its_empty_object() -> None:
    calls = _assemble(_run('[{"name": "ping", "arguments": {}}]', step=1))
    assert calls == [{"id": "call_0", "name": "ping", "arguments": "{}"}]


def test_wrapped_response_streams_as_content() -> None:
    deltas = _run(json.dumps({"response": 'Hello "you"\nbye'}), step=2, wrapped=True)
    assert all(isinstance(delta, ContentDelta) for delta in deltas)
    assert "".join(d.text for d in deltas if isinstance(d, ContentDelta)) == 'Hello "you"\nbye'


def test_wrapped_tool_calls_are_read_from_the_tool_calls_key() -> None:
    calls = _assemble(_run(json.dumps({"tool_calls": CALLS[:2]}), step=3, wrapped=True))
    assert [call["arguments"] for call in calls] == [dump_arguments(call["arguments"]) for call in CALLS[:2]]


def test_call_json_cut_off_before_a_name_leaks_nothing_into_content() -> None:
    deltas = _run('[{"na', step=2)
    assert deltas == []


def test_call_ids_look_like_openai_ids() -> None:
    first, second = new_call_id(), new_call_id()
    assert first.startswith("call_")
    assert len(first) == 29
    assert first != second
