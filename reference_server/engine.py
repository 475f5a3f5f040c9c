"""The model engine: one llama.cpp context driven by one worker thread, tokens handed to the asyncio loop."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import llama_cpp
import numpy as np
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

from reference_server.model import LlamaSettings, ModelInfo, describe
from reference_server.prompt import ChatTemplate
from reference_server.sampling import GrammarError, TokenSampler
from reference_server.textstream import StopScanner

__all__ = [
    "Backend",
    "DraftStats",
    "Embeddings",
    "Engine",
    "FinishReason",
    "Finished",
    "Generation",
    "GenerationRequest",
    "GrammarError",
    "Piece",
    "Sampling",
]

DEFAULT_TEMPERATURE = 0.8
DRAFT_TOKENS = 8
MIN_BATCH = 64  # the fewest prompt tokens per llama.cpp batch, on a prompt that long; see Engine._load_prompt
CLOSE_TIMEOUT_S = 60.0  # how long close() waits for the jobs in progress


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of one request (temperature 0 = greedy)."""

    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = 0.95
    seed: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    top_k: int = 40
    """0: no top-k cut."""
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    """1: none (llama.cpp's repeat penalty over the last 64 tokens)."""


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate: the prompt tokens, sampling, an optional GBNF grammar, speculative drafting on/off."""

    prompt_tokens: tuple[int, ...]
    sampling: Sampling = field(default_factory=Sampling)
    grammar: str | None = None
    speculative: bool = False


@dataclass(frozen=True)
class Piece:
    """Generated text (already cut at stop strings), as it comes."""

    text: str


@dataclass(frozen=True)
class DraftStats:
    """Speculative decoding counts: every drafted token was accepted, rejected or never checked (ignored)."""

    total: int = 0
    accepted: int = 0
    rejected: int = 0

    @property
    def ignored(self) -> int:
        return self.total - self.accepted - self.rejected


@dataclass(frozen=True)
class Finished:
    """The last event of a generation."""

    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    draft: DraftStats | None = None
    stop_sequence: str | None = None
    """The stop string that ended generation (reason STOP), None when it ended otherwise."""
    cached_tokens: int = 0
    """Leading prompt tokens reused from the KV cache instead of evaluated again."""

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


class Backend(Protocol):
    """What the HTTP app needs from an engine (tests substitute wrappers)."""

    info: ModelInfo
    template: ChatTemplate

    @property
    def n_ctx(self) -> int: ...

    def tokenize(self, text: str) -> list[int]: ...

    def generate(self, request: GenerationRequest) -> Generation: ...

    async def embed(self, texts: Sequence[str]) -> Embeddings: ...


Emit = Callable[[object], None]


@dataclass
class _Job:
    work: Callable[[_Job], None]
    emit: Emit
    cancelled: bool = False


class Engine:
    """Owns the Llama instance; all llama.cpp work runs in one worker thread, requests wait in a queue."""

    def __init__(self, path: Path, settings: LlamaSettings | None = None) -> None:
        self.settings = settings or LlamaSettings()
        if self.settings.n_batch < 2 * MIN_BATCH:
            raise ValueError(f"n_batch must be at least {2 * MIN_BATCH} (prompts run in batches of {MIN_BATCH}+)")
        self.path = path
        self.llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=self.settings.n_ctx,
            n_batch=self.settings.n_batch,
            n_threads=self.settings.n_threads,
            n_threads_batch=self.settings.n_threads,
            flash_attn=self.settings.flash_attn,
            verbose=False,
        )
        metadata: dict[str, str] = dict(self.llama.metadata)
        self.info = describe(path, metadata)
        model = self.llama._model  # the high-level Llama does not expose the vocabulary handle
        vocab = model.vocab
        self._bos = self.llama.token_bos()
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab)) and self._bos >= 0
        bos_text = model.token_get_text(self._bos) if self._bos >= 0 else ""
        eos = self.llama.token_eos()
        self.template = ChatTemplate(
            metadata.get("tokenizer.chat_template"),
            bos_token=bos_text,
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
        )
        self._bos_text = bos_text
        self._pieces = self._piece_table(vocab, self.llama.n_vocab())
        self._eog = frozenset(t for t in range(self.llama.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t))
        self._embedder: llama_cpp.Llama | None = None
        self._prompt_cached = 0  # leading tokens of the KV cache evaluated as a prompt, in batches of MIN_BATCH or more
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending = 0  # jobs queued or running; see idle
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="llama-worker", daemon=True)
        self._thread.start()

    @staticmethod
    def _piece_table(vocab: Any, n_vocab: int) -> list[bytes]:
        buffer = ctypes.create_string_buffer(256)
        pieces = []
        for token in range(n_vocab):
            size = llama_cpp.llama_token_to_piece(vocab, token, buffer, 256, 0, False)
            pieces.append(buffer.raw[: max(size, 0)])
        return pieces

    # ---- called from the event loop -------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return int(self.llama.n_ctx())

    @property
    def idle(self) -> bool:
        """No job is running or waiting."""
        with self._pending_lock:
            return self._pending == 0

    def _submit(self, job: _Job) -> None:
        with self._pending_lock:
            self._pending += 1
        self._jobs.put(job)

    def tokenize(self, text: str) -> list[int]:
        """Prompt tokens as llama-cpp-python's create_completion makes them (special tokens parsed)."""
        tokens = self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if self._add_bos and not (self._bos_text and text.startswith(self._bos_text)):
            return [self._bos, *tokens]
        return tokens

    def generate(self, request: GenerationRequest) -> Generation:
        """Queue a generation; iterate the result for its events, cancel() it to stop between tokens.

        An empty prompt starts from the BOS token (llama.cpp has no logits to sample from without a token).
        """
        if not request.prompt_tokens:
            if self._bos < 0:
                raise ValueError("this model has no BOS token to start an empty prompt from")
            request = replace(request, prompt_tokens=(self._bos,))
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[object] = asyncio.Queue()
        job = _Job(work=lambda job: self._generate(job, request), emit=_emitter(loop, events))
        self._submit(job)
        return Generation(job, events)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[object] = asyncio.Queue()
        job = _Job(work=lambda job: job.emit(self._embed(list(texts))), emit=_emitter(loop, events))
        self._submit(job)
        try:
            event = await events.get()
        finally:
            job.cancelled = True
        if isinstance(event, BaseException):
            raise event
        assert isinstance(event, Embeddings)
        return event

    def close(self) -> None:
        """Stop the worker once the queued jobs are done, then free llama.cpp's model and contexts (idempotent).

        Blocks until then: call it off the event loop. If the worker does not stop in time, nothing is freed
        (a job could still be using the model).
        """
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            return
        for llama in (self._embedder, self.llama):
            if llama is not None:
                llama.close()
        self._embedder = None

    # ---- worker thread --------------------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if job.cancelled:  # its client left while it waited: end its events without doing the work
                    job.emit(Finished(FinishReason.CANCELLED, prompt_tokens=0, completion_tokens=0, seconds=0.0))
                else:
                    job.work(job)
            except Exception as exc:  # handed to the request that asked; the worker keeps serving
                job.emit(exc)
            finally:
                with self._pending_lock:
                    self._pending -= 1

    def _sampler(self, request: GenerationRequest) -> TokenSampler:
        sampling = request.sampling
        return TokenSampler(
            self.llama._model,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            repeat_penalty=sampling.repeat_penalty,
            grammar=request.grammar,
            end_tokens=self._eog,
        )

    def _load_prompt(self, tokens: Sequence[int]) -> int:
        """Evaluate the prompt, after the longest cached prefix whose reuse gives the logits a fresh start gives.

        A token's logits depend on the kernels that evaluated it and the tokens before it, and llama.cpp's CPU
        kernels change with the batch size: one token, batches under MIN_BATCH tokens and batches of MIN_BATCH
        or more each take their own path (flash attention switches at 64 query rows). Within the last path, how
        the tokens are split into batches changes no bit of the logits (measured; test_prompt_cache checks it on
        the real model). So a prompt of MIN_BATCH tokens or more is evaluated in batches of MIN_BATCH to n_batch
        tokens, after the prefix it shares with the last such prompt, always leaving MIN_BATCH tokens to evaluate;
        a shorter prompt is evaluated whole, without reuse. A seeded answer is then a function of the request
        alone, whatever ran before it. Returns how many leading tokens were reused.
        """
        llm = self.llama
        start = 0
        if len(tokens) >= MIN_BATCH:
            cached = llm.input_ids[: min(self._prompt_cached, llm.n_tokens)]
            shared = min(len(cached), len(tokens) - MIN_BATCH)
            mismatch = np.nonzero(cached[:shared] != np.asarray(tokens[:shared], dtype=np.intc))[0]
            start = int(mismatch[0]) if len(mismatch) else shared
        self._prompt_cached = 0
        llm.n_tokens = start
        for size in prompt_batches(len(tokens) - start, llm.n_batch):
            llm.eval(tokens[llm.n_tokens : llm.n_tokens + size])
        self._prompt_cached = len(tokens) if len(tokens) >= MIN_BATCH else 0
        return start

    def _decode_all(self, tokens: Sequence[int]) -> None:
        """Decode a batch with logits for every position (to verify drafted tokens)."""
        llm = self.llama
        start = llm.n_tokens
        llm._ctx.kv_cache_seq_rm(-1, start, -1)
        llm._batch.set_batch(batch=tokens, n_past=start, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[start : start + len(tokens)] = tokens
        llm.n_tokens = start + len(tokens)

    def _generate(self, job: _Job, request: GenerationRequest) -> None:
        started = time.perf_counter()
        prompt = list(request.prompt_tokens)
        sampler = self._sampler(request)
        try:
            cached = self._load_prompt(prompt)
            room = self.n_ctx - len(prompt)
            limit = room if request.sampling.max_tokens is None else min(room, request.sampling.max_tokens)
            drafter = LlamaPromptLookupDecoding(num_pred_tokens=DRAFT_TOKENS) if request.speculative else None
            stops = StopScanner(request.sampling.stop)
            reason, produced, draft = self._run(job, sampler, limit, stops, drafter)
        finally:
            sampler.close()
        job.emit(
            Finished(
                reason=reason,
                prompt_tokens=len(prompt),
                completion_tokens=produced,
                seconds=time.perf_counter() - started,
                draft=draft if request.speculative else None,
                stop_sequence=stops.matched,
                cached_tokens=cached,
            )
        )

    def _run(
        self,
        job: _Job,
        sampler: TokenSampler,
        limit: int,
        stops: StopScanner,
        drafter: LlamaPromptLookupDecoding | None,
    ) -> tuple[FinishReason, int, DraftStats]:
        llm = self.llama
        ctx = llm._ctx
        pieces = self._pieces
        eog = self._eog
        emit = job.emit
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        produced = drafted = accepted = rejected = 0
        drafts: list[int] = []
        reason = FinishReason.LENGTH
        while produced < limit:
            rows = len(drafts) + 1
            token = -1
            for row in range(rows):
                if job.cancelled:
                    return FinishReason.CANCELLED, produced, DraftStats(drafted, accepted, rejected)
                token = sampler.sample(ctx, row - rows)
                if token in eog:
                    reason = FinishReason.STOP
                    break
                produced += 1
                text = decoder.decode(pieces[token])
                if text:
                    out, stopped = stops.feed(text)
                    if out:
                        emit(Piece(out))
                    if stopped:
                        return FinishReason.STOP, produced, DraftStats(drafted, accepted, rejected)
                if produced >= limit:
                    break
                if row < rows - 1:
                    if token != drafts[row]:
                        rejected += rows - 1 - row
                        llm.n_tokens -= rows - 1 - row
                        break
                    accepted += 1
            if reason is FinishReason.STOP or produced >= limit:
                break
            if drafter is None:
                drafts = []
                llm.eval([token])
                continue
            room = min(limit - produced, self.n_ctx - llm.n_tokens - 1, llm.n_batch - 1)
            llm.input_ids[llm.n_tokens] = token
            drafts = [int(t) for t in drafter(llm.input_ids[: llm.n_tokens + 1])[: max(room, 0)]]
            drafted += len(drafts)
            self._decode_all([token, *drafts])
        tail = decoder.decode(b"", final=True)
        out, stopped = stops.feed(tail) if tail else ("", False)
        out += "" if stopped else stops.flush()
        if out:
            emit(Piece(out))
        return reason, produced, DraftStats(drafted, accepted, rejected)

    def _embed(self, texts: list[str]) -> Embeddings:
        if self._embedder is None:
            self._embedder = llama_cpp.Llama(
                model_path=str(self.path),
                embedding=True,
                n_ctx=self.settings.n_ctx,
                n_batch=self.settings.n_ctx,
                n_ubatch=self.settings.n_ctx,
                n_threads=self.settings.n_threads,
                n_threads_batch=self.settings.n_threads,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                verbose=False,
            )
        vectors, count = self._embedder.embed(texts, normalize=True, truncate=False, return_count=True)
        return Embeddings(vectors=[[float(x) for x in vector] for vector in vectors], prompt_tokens=int(count))


def prompt_batches(count: int, limit: int) -> list[int]:
    """Split count tokens into batches of at most limit, none under MIN_BATCH (unless count itself is)."""
    sizes = [limit] * (count // limit) + ([count % limit] if count % limit else [])
    if len(sizes) > 1 and sizes[-1] < MIN_BATCH:
        sizes[-2] -= MIN_BATCH - sizes[-1]
        sizes[-1] = MIN_BATCH
    return sizes


class Generation:
    """The events of one queued generation: Piece... then Finished; an engine failure is raised."""

    def __init__(self, job: _Job, events: asyncio.Queue[object]) -> None:
        self._job = job
        self._events = events
        self._done = False

    def cancel(self) -> None:
        """Stop generating at the next token (the worker checks between tokens)."""
        self._job.cancelled = True

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> Piece | Finished:
        if self._done:
            raise StopAsyncIteration
        try:
            event = await self._events.get()
        except BaseException:
            self.cancel()
            raise
        if isinstance(event, BaseException):
            self._done = True
            raise event
        assert isinstance(event, Piece | Finished)
        self._done = isinstance(event, Finished)
        return event


def _emitter(loop: asyncio.AbstractEventLoop, events: asyncio.Queue[object]) -> Emit:
    """Hand events from the worker thread to the loop, several per loop wake-up when the loop is behind.

    Each wake-up costs the worker a write to the loop's self-pipe and the loop a callback; while one is
    pending, further events only join the batch it will move into the queue (in order).
    """
    lock = threading.Lock()
    batch: list[object] = []

    def deliver() -> None:
        with lock:
            ready = batch.copy()
            batch.clear()
        for event in ready:
            events.put_nowait(event)

    def emit(event: object) -> None:
        with lock:
            batch.append(event)
            if len(batch) > 1:  # a wake-up is already on its way
                return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            loop.call_soon_threadsafe(deliver)

    return emit
