"""The engine's prompt cache: a reused prefix gives the very logits a fresh evaluation gives."""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest

from reference_server.engine import MIN_BATCH, Engine, prompt_batches
from tests.reference_server.conftest import InWorker

STORY = (
    "The harbour town woke slowly. Fishing boats came back with the tide, gulls argued over the nets, and the "
    "baker opened his shutters to the smell of bread. Children ran along the quay to school while the old "
    "ferryman counted his passengers twice, as he had done every morning for forty years. "
)


def _last_logits(engine: Engine) -> np.ndarray:
    pointer = llama_cpp.llama_get_logits_ith(engine.llama._ctx.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(engine.llama.n_vocab(),)).copy()


def _fresh(engine: Engine, tokens: list[int]) -> np.ndarray:
    engine._prompt_cached = 0  # nothing to reuse
    assert engine._load_prompt(tokens) == 0
    return _last_logits(engine)


def test_a_reused_prefix_gives_the_logits_of_a_fresh_evaluation(reference_engine: Engine, in_worker: InWorker) -> None:
    engine = reference_engine
    prompt = engine.tokenize(STORY * 3)
    assert len(prompt) > 2 * MIN_BATCH + 40
    other = prompt[:101] + engine.tokenize(" Then a storm came in from the sea and nobody went out that day.")

    def run() -> list[tuple[str, int, bool]]:
        expected = _fresh(engine, prompt)
        results = []
        for before, name in ((other, "after a prompt sharing 101 tokens"), (prompt, "after the same prompt")):
            _fresh(engine, before)
            reused = engine._load_prompt(prompt)
            results.append((name, reused, bool(np.array_equal(_last_logits(engine), expected))))
        return results

    results = in_worker(run)
    assert results == [
        ("after a prompt sharing 101 tokens", 101, True),
        ("after the same prompt", len(prompt) - MIN_BATCH, True),  # the last MIN_BATCH tokens are evaluated again
    ]


def test_batches_of_one_size_and_another_differ_so_the_rule_matters(
    reference_engine: Engine, in_worker: InWorker
) -> None:
    """What the batching rule guards against: the same prompt split at a batch under MIN_BATCH answers
    differently (if llama.cpp ever stops differing, the rule may go; the test above keeps it honest)."""
    engine = reference_engine
    prompt = engine.tokenize(STORY * 2)
    llm = engine.llama

    def run() -> bool:
        expected = _fresh(engine, prompt)
        engine._prompt_cached = 0
        llm.n_tokens = 0
        split = len(prompt) - MIN_BATCH // 2
        llm.eval(prompt[:split])
        llm.eval(prompt[split:])  # a small batch
        same = bool(np.array_equal(_last_logits(engine), expected))
        engine._prompt_cached = 0
        return same

    assert in_worker(run) is False


def test_a_short_prompt_is_evaluated_whole_without_reuse(reference_engine: Engine, in_worker: InWorker) -> None:
    engine = reference_engine
    prompt = engine.tokenize("Name a colour.")
    assert len(prompt) < MIN_BATCH

    def run() -> tuple[int, int]:
        _fresh(engine, prompt)
        return engine._load_prompt(prompt), engine._prompt_cached

    assert in_worker(run) == (0, 0)


@pytest.mark.parametrize(
    ("count", "limit", "expected"),
    [
        (10, 512, [10]),
        (64, 512, [64]),
        (512, 512, [512]),
        (600, 512, [512, 88]),
        (530, 512, [466, 64]),
        (1030, 512, [512, 454, 64]),
    ],
)
def test_prompt_batches_never_leave_a_small_last_batch(count: int, limit: int, expected: list[int]) -> None:
    sizes = prompt_batches(count, limit)
    assert sizes == expected
    assert sum(sizes) == count
    assert all(MIN_BATCH <= size <= limit for size in sizes) or sizes == [count]
