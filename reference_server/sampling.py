"""Token sampling for one request: llama.cpp's sampler chain, plus a grammar checked lazily for speed."""

from __future__ import annotations

import ctypes
import math
import secrets
from typing import Any

import llama_cpp
import numpy as np

__all__ = ["GrammarError", "TokenSampler"]

# On a grammar miss, first look for the best allowed token among this many top candidates and the end-of-generation
# tokens (a finished grammar allows only those), then in the whole vocabulary
SHORTLIST = 1024
_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class GrammarError(ValueError):
    """llama.cpp rejected a generated grammar."""


class _Candidates:
    """A reusable llama_token_data_array over a numpy buffer."""

    def __init__(self, size: int) -> None:
        self.data = np.recarray((size,), dtype=_TOKEN_DATA)
        self.array = llama_cpp.llama_token_data_array(
            data=self.data.ctypes.data_as(llama_cpp.llama_token_data_p), size=size, selected=-1, sorted=False
        )

    def fill(self, ids: Any, logits: Any) -> None:
        count = len(ids)
        self.data.id[:count] = ids
        self.data.logit[:count] = logits
        self.data.p[:count] = 0.0
        self.array.size = count
        self.array.selected = -1
        self.array.sorted = False


class TokenSampler:
    """Samples like llama-cpp-python (penalties, top_k 40, top_p, min_p 0.05, temperature; greedy at 0).

    With a grammar, the unconstrained choice is checked against the grammar first and the full
    constrained sampling runs only when it is not allowed (what llama.cpp's common sampler does).
    Plain greedy sampling (temperature 0, no penalties) takes the first highest logit straight from the
    logits, as llama.cpp's greedy sampler does, without copying the vocabulary into a candidate array
    (about 25 instead of 140 microseconds a token on the 49k-token SmolLM2 vocabulary).
    """

    def __init__(
        self,
        model: Any,
        *,
        temperature: float,
        top_p: float,
        seed: int | None,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        top_k: int = 40,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        grammar: str | None = None,
        end_tokens: frozenset[int] = frozenset(),
    ) -> None:
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(model.vocab))
        penalised = bool(frequency_penalty or presence_penalty or repeat_penalty != 1.0)
        self._argmax = temperature <= 0 and not penalised
        self._chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        stages = []
        if penalised:
            stages.append(
                llama_cpp.llama_sampler_init_penalties(
                    self._n_vocab, 64, repeat_penalty, frequency_penalty, presence_penalty
                )
            )
        if temperature <= 0:
            stages.append(llama_cpp.llama_sampler_init_greedy())
        else:
            stages += [
                llama_cpp.llama_sampler_init_top_k(top_k),
                llama_cpp.llama_sampler_init_top_p(top_p, 1),
                llama_cpp.llama_sampler_init_min_p(min_p, 1),
                llama_cpp.llama_sampler_init_temp(temperature),
                llama_cpp.llama_sampler_init_dist(seed if seed is not None else secrets.randbits(32)),
            ]
        for stage in stages:
            llama_cpp.llama_sampler_chain_add(self._chain, stage)
        self._grammar: Any = None
        if grammar is not None:
            self._grammar = llama_cpp.llama_sampler_init_grammar(model.vocab, grammar.encode("utf-8"), b"root")
            if not self._grammar:
                llama_cpp.llama_sampler_free(self._chain)
                raise GrammarError(
                    "llama.cpp could not parse the grammar built from this JSON Schema (the server log says why; "
                    "often a bounded repetition inside an optional or repeated group, past llama.cpp's limit)"
                )
            self._one = _Candidates(1)
            self._end_tokens = np.fromiter(sorted(end_tokens), dtype=np.intc)
            self._shortlist = _Candidates(min(SHORTLIST + len(self._end_tokens), self._n_vocab))
            self._all = _Candidates(self._n_vocab)

    def sample(self, ctx: Any, index: int) -> int:
        """The next token from the logits at output index (negative counts from the end)."""
        if self._argmax:  # the greedy chain keeps no state: nothing to accept
            token = int(np.argmax(self._logits(ctx, index)))
        else:
            token = int(llama_cpp.llama_sampler_sample(self._chain, ctx.ctx, index))
        if self._grammar is None:
            return token
        if not self._allowed(token):
            token = self._constrained(ctx, index)
            llama_cpp.llama_sampler_accept(self._chain, token)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        return token

    def _allowed(self, token: int) -> bool:
        self._one.fill([token], [1.0])
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(self._one.array))
        return math.isfinite(float(self._one.data.logit[0]))

    def _logits(self, ctx: Any, index: int) -> Any:
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, index), shape=(self._n_vocab,))

    def _constrained(self, ctx: Any, index: int) -> int:
        logits = self._logits(ctx, index)
        size = min(SHORTLIST, self._n_vocab)
        top = np.union1d(np.argpartition(logits, -size)[-size:], self._end_tokens).astype(np.intc)
        for candidates, ids in ((self._shortlist, top), (self._all, np.arange(self._n_vocab, dtype=np.intc))):
            candidates.fill(ids, logits[ids])
            llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(candidates.array))
            if np.isfinite(candidates.data.logit[: candidates.array.size]).any():
                llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(candidates.array))
                return int(candidates.data.id[candidates.array.selected])
        raise GrammarError("the grammar allows no token here")

    def close(self) -> None:
        if self._grammar is not None:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
