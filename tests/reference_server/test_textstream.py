"""Stop-string cutting and <think> reasoning splitting, fed whole and piece by piece."""

from __future__ import annotations

import pytest

from reference_server.textstream import Channel, StopScanner, ThinkSplitter, split_reasoning


def _feed_stops(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    scanner = StopScanner(stops)
    out = []
    for piece in pieces:
        text, stopped = scanner.feed(piece)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out) + scanner.flush(), False


@pytest.mark.parametrize(
    ("stops", "pieces", "expected"),
    [
        ([], ["a", "b"], ("ab", False)),
        (["END"], ["hello E", "N", "D more"], ("hello ", True)),
        (["END"], ["hello E", "NX"], ("hello ENX", False)),
        (["\n\n", "###"], ["one\n", "\ntwo"], ("one", True)),
        (["ab"], ["xa"], ("xa", False)),
        (["stop"], ["sto", "p"], ("", True)),
    ],
)
def test_stop_scanner_cuts_at_the_first_stop(stops: list[str], pieces: list[str], expected: tuple[str, bool]) -> None:
    assert _feed_stops(stops, pieces) == expected


def test_stop_scanner_holds_back_only_a_possible_stop_prefix() -> None:
    scanner = StopScanner(["STOP"])
    assert scanner.feed("abc ST") == ("abc ", False)
    assert scanner.feed("x") == ("STx", False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain answer", ("", "plain answer")),
        ("<think>let me see</think>The answer is 4.", ("let me see", "The answer is 4.")),
        ("before<think>mid</think>after", ("mid", "beforeafter")),
        ("<think>never closed", ("never closed", "")),
        ("a < b and <thin", ("", "a < b and <thin")),
    ],
)
def test_split_reasoning(text: str, expected: tuple[str, str]) -> None:
    assert split_reasoning(text) == expected


def test_think_splitter_streams_the_same_split_one_character_at_a_time() -> None:
    text = "<think>step 1, step 2</think>Result: <b>4</b>"
    splitter = ThinkSplitter()
    parts = [part for char in text for part in splitter.feed(char)] + splitter.flush()
    reasoning = "".join(piece for channel, piece in parts if channel is Channel.REASONING)
    content = "".join(piece for channel, piece in parts if channel is Channel.CONTENT)
    assert (reasoning, content) == split_reasoning(text) == ("step 1, step 2", "Result: <b>4</b>")
    assert all(piece for _, piece in parts), "no empty pieces are emitted"
