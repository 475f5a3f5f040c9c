"""Token sampling: the greedy shortcut picks what llama.cpp's greedy sampler picks."""

from __future__ import annotations

import llama_cpp

from reference_server.engine import Engine
from reference_server.sampling import TokenSampler
from tests.reference_server.conftest import InWorker


def test_greedy_sampling_picks_the_token_llama_cpp_greedy_picks(reference_engine: Engine, in_worker: InWorker) -> None:
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

    picked = in_worker(pairs)
    assert [ours for ours, _ in picked] == [theirs for _, theirs in picked]
    assert len({ours for ours, _ in picked}) > 1  # a real continuation, not one token over and over
