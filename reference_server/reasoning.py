"""Reasoning on demand: a grammar-constrained thinking segment generated before the answer, within a budget.

The default model does not reason on its own, so a surface that asks for reasoning (Anthropic's
`thinking`, later chat completions' `reasoning_content` and the Responses API's reasoning items) runs its
plan through `reason`: first a segment after `<think>` whose grammar forces some text and forbids `<`
(so it cannot close or open tags), at most `budget_tokens` tokens; then the plan's own generation (its
grammar, stops and remaining `max_tokens`) on the prompt extended by the closed segment. The events are
`Thought` pieces, then the answer's `Piece`s, then one `Finished` for the whole: prompt tokens of the plan,
completion tokens of thought, tags and answer together. Cancelling stops whichever part is running.
`thought_tokens` is then the number of tokens the thinking segment generated (for a reasoning-token count).

A surface that must verify the reasoning it handed out later (Anthropic's thinking `signature`) uses
`Signer`: an HMAC of the text under a per-server secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from reference_server.chat import ChatPlan
from reference_server.engine import Backend, Finished, FinishReason, Generation, GenerationRequest, Piece
from reference_server.textstream import THINK_CLOSE, THINK_OPEN

__all__ = ["THOUGHT_GRAMMAR", "ReasonedGeneration", "Signer", "Thought", "reason"]

THOUGHT_GRAMMAR = "root ::= [^ \\t\\r\\n<] [^<]*\n"
"""At least one visible character, never `<`: the segment cannot end empty or write a tag."""
_OPEN = f"{THINK_OPEN}\n"
_CLOSE = f"\n{THINK_CLOSE}\n\n"


@dataclass(frozen=True)
class Thought:
    """A piece of reasoning text, as it is generated."""

    text: str


class ReasonedGeneration:
    """Thought... then Piece... then Finished, like `Generation` with reasoning in front."""

    def __init__(self, backend: Backend, plan: ChatPlan, budget_tokens: int) -> None:
        self._backend = backend
        self._plan = plan
        self._budget = budget_tokens
        self._current: Generation | None = None
        self._cancelled = False
        self.thought_tokens = 0
        """Tokens the thinking segment generated; final once the first answer Piece (or Finished) came."""
        self._events = self._run()

    def cancel(self) -> None:
        """Stop generating at the next token, in whichever part runs."""
        self._cancelled = True
        if self._current is not None:
            self._current.cancel()

    def __aiter__(self) -> ReasonedGeneration:
        return self

    async def __anext__(self) -> Thought | Piece | Finished:
        return await anext(self._events)

    def _start(self, request: GenerationRequest) -> Generation:
        self._current = self._backend.generate(request)
        if self._cancelled:
            self._current.cancel()
        return self._current

    async def _run(self) -> AsyncIterator[Thought | Piece | Finished]:
        plan = self._plan
        sampling = plan.generation.sampling
        prompt_tokens = len(plan.generation.prompt_tokens)
        limit = sampling.max_tokens
        budget = self._budget if limit is None else max(1, min(self._budget, limit - 1))
        head = plan.prompt + _OPEN
        thought_request = GenerationRequest(
            prompt_tokens=tuple(self._backend.tokenize(head)),
            sampling=replace(sampling, max_tokens=budget, stop=()),
            grammar=THOUGHT_GRAMMAR,
        )
        thought: list[str] = []
        async for event in self._start(thought_request):
            if isinstance(event, Piece):
                thought.append(event.text)
                yield Thought(event.text)
            elif event.reason is FinishReason.CANCELLED:
                self.thought_tokens = event.completion_tokens
                yield replace(event, prompt_tokens=prompt_tokens, completion_tokens=event.completion_tokens)
                return
            else:
                self.thought_tokens = event.completion_tokens
        answer_tokens = self._backend.tokenize(head + "".join(thought).rstrip() + _CLOSE)
        spent = len(answer_tokens) - prompt_tokens  # the thought and its tags, as the answer's prompt holds them
        room = None if limit is None else limit - spent
        if room is not None and room <= 0:
            yield Finished(FinishReason.LENGTH, prompt_tokens, limit or 0, 0.0)
            return
        answer_request = replace(
            plan.generation, prompt_tokens=tuple(answer_tokens), sampling=replace(sampling, max_tokens=room)
        )
        async for event in self._start(answer_request):
            if isinstance(event, Piece):
                yield event
            else:
                yield replace(event, prompt_tokens=prompt_tokens, completion_tokens=spent + event.completion_tokens)


def reason(backend: Backend, plan: ChatPlan, budget_tokens: int) -> ReasonedGeneration:
    """Generate a thinking segment of at most `budget_tokens` tokens, then the plan's answer."""
    return ReasonedGeneration(backend, plan, budget_tokens)


class Signer:
    """Signs reasoning text so a client can hand it back and the server can tell it is unchanged."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def sign(self, text: str) -> str:
        digest = hmac.new(self._secret, text.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")

    def verify(self, text: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(text), signature)
