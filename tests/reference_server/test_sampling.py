"""Token sampling: the greedy shortcut picks what llama.cpp's greedy sampler picks."""

from __future__ import annotations

import queue
from collections.abc import Callable

import llama_cpp

from reference_server.engine import Engine, _Job
from reference_server.sampling import TokenSampler

DEADLINE_S = 300  # generous: waits for the engine's worker, never for a duration


def _in_worker[T](engine: Engine, work: Callable[[], T]) -> T:
    """Run work in the engine's worker thread (the only thread that may touch its llama.cpp context)."""
    results: queue.SimpleQueue[object] = queue.SimpleQueue()
    engine._submit(_Job(work=lambda job: results.put(work()), emit=results.put))
    result = results.get(timeout=DEADLINE_S)
    if isinstance(result, BaseException):
        raise result
    return result  # type: ignore[return-value]  # what work returned


def test_greedy_sampling_picks_the_token_llama_cpp_greedy_picks(reference_engine: Engine) -> None:
    engine = reference_engine

    def pairs() -> list[tuple[int, int]]:
        llm = engine.llama
        engine._load_prompt(engine.tokenize("The three primary colours are"))
        ours = TokenSampler(llm._model, temperature=0, top_p=0.95, seed=1)
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        picked = []
        try:
            for _ in range(12):
                token = ours.sample(llm._ctx, -1)
                picked.append((token, int(llama_cpp.llama_sampler_sample(chain, llm._ctx.ctx, -1))))
                llm.eval([token])
        finally:
            ours.close()
            llama_cpp.llama_sampler_free(chain)
        return picked

    picked = _in_worker(engine, pairs)
    assert [ours for ours, _ in picked] == [theirs for _, theirs in picked]
    assert len({ours for ours, _ in picked}) > 1  # a real continuation, not one token over and over
