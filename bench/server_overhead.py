"""Server overhead: raw llama-cpp-python streaming vs the reference server over HTTP, interleaved in one run.

Run: .venv/bin/python bench/server_overhead.py [--rounds N] [--max-tokens N]
Both sides load the same GGUF with the same n_ctx / n_batch / n_threads and generate the same prompts
greedily; (a) is Llama.create_completion(stream=True) in this process, (b) is POST /v1/completions with
stream=true to the server of `conformance serve` in a subprocess (so the HTTP client does not share its GIL).
Anthropic Messages the same way: (c) is create_completion on the prompt as the model's chat template renders
the user message, (d) POST /v1/messages with stream=true (text_delta frames counted).
(e) is POST /v1/responses with stream=true to the same server (a prompt of its own as `input`, so the server's
KV cache holds none of it; tokens counted as response.output_text.delta events), compared with (f):
create_completion on that prompt as the chat template renders it.
Run it on an otherwise idle machine: llama.cpp's threads spin at barriers, so other load distorts both sides.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import llama_cpp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference_server.model import LlamaSettings, default_model_path  # noqa: E402  # after the sys.path insert
from reference_server.prompt import ChatTemplate  # noqa: E402  # after the sys.path insert

PROMPTS = (
    "The history of the Roman Empire begins",
    "Here is a recipe for a simple tomato soup:",
    "Write a short story about a lighthouse keeper.",
    "The three laws of thermodynamics are",
    "A beginner's guide to growing vegetables at home:",
    "The most important inventions of the twentieth century were",
)


@dataclass(frozen=True)
class Run:
    tokens: int
    ttft_s: float
    decode_s: float


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


def raw_run(llm: llama_cpp.Llama, prompt: str, max_tokens: int) -> Run:
    llm.reset()  # type: ignore[no-untyped-call]  # no prefix reuse: the server reuses only whole 32-token blocks
    chunks = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0, stream=True)
    return timed(bool(chunk["choices"][0]["text"]) for chunk in chunks)  # type: ignore[index]  # dicts


def http_run(client: httpx.Client, path: str, body: dict[str, Any], is_token: Callable[[str], bool]) -> Run:
    """POST a streamed request and time the SSE lines is_token accepts (from the request's start)."""

    def lines() -> Iterator[bool]:
        with client.stream("POST", path, json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                yield is_token(line)

    return timed(lines())


def server_run(client: httpx.Client, prompt: str, max_tokens: int) -> Run:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    return http_run(
        client, "/v1/completions", body, lambda line: line.startswith("data: {") and '"text":""' not in line
    )


def messages_run(client: httpx.Client, model: str, prompt: str, max_tokens: int) -> Run:
    messages = [{"role": "user", "content": prompt}]
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    delta = 'data: {"type":"content_block_delta"'
    return http_run(client, "/v1/messages", body, lambda line: line.startswith(delta) and '"text":""' not in line)


def responses_run(client: httpx.Client, model: str, prompt: str, max_tokens: int) -> Run:
    body = {"model": model, "input": prompt, "max_output_tokens": max_tokens, "temperature": 0, "stream": True}
    delta = 'data: {"type":"response.output_text.delta"'
    return http_run(client, "/v1/responses", body, lambda line: line.startswith(delta))


def chat_prompt(llm: llama_cpp.Llama, prompt: str) -> str:
    """The prompt text the server renders for one user message (the GGUF's own chat template)."""
    model = llm._model  # the high-level Llama does not expose token texts
    template = ChatTemplate(
        llm.metadata.get("tokenizer.chat_template"),
        bos_token=model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else "",
        eos_token=model.token_get_text(llm.token_eos()) if llm.token_eos() >= 0 else "",
    )
    return template.render([{"role": "user", "content": prompt}])


def start_server(model: Path, settings: LlamaSettings) -> tuple[subprocess.Popen[str], str]:
    """`conformance serve` in a subprocess, on the same GGUF, context and thread count."""
    command = [sys.executable, "-m", "conformance", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--model", str(model), "--ctx", str(settings.n_ctx), "--threads", str(settings.n_threads)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert process.stdout is not None
    line = process.stdout.readline()
    if " at http" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return process, line.split(" at ", 1)[1].split()[0]


def summary(name: str, runs: list[Run]) -> tuple[float, float]:
    tokens = sum(run.tokens - 1 for run in runs)
    rate = tokens / sum(run.decode_s for run in runs)
    ttft = statistics.median(run.ttft_s for run in runs) * 1000
    print(f"{name:<34} {rate:>9.1f} tok/s   TTFT median {ttft:>7.1f} ms   ({len(runs)} runs)")
    return rate, ttft


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="times through the prompt list")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="n_threads for both sides")
    args = parser.parse_args()
    settings = LlamaSettings(n_threads=args.threads)
    model = default_model_path()
    print(f"model {model.name}, n_ctx {settings.n_ctx}, n_batch {settings.n_batch}, n_threads {settings.n_threads}")
    llm = llama_cpp.Llama(
        model_path=str(model),
        n_ctx=settings.n_ctx,
        n_batch=settings.n_batch,
        n_threads=settings.n_threads,
        n_threads_batch=settings.n_threads,
        verbose=False,
    )
    process, url = start_server(model, settings)
    raw: list[Run] = []
    served: list[Run] = []
    raw_chat: list[Run] = []
    messages: list[Run] = []
    raw_own: list[Run] = []
    responses: list[Run] = []
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            model_id = client.get("/v1/models").json()["data"][0]["id"]
            raw_run(llm, "Warm up.", 8)
            server_run(client, "Warm up.", 8)
            messages_run(client, model_id, "Warm up.", 8)
            responses_run(client, model_id, "Warm up.", 8)
            for round_ in range(args.rounds):
                for index, prompt in enumerate(PROMPTS):
                    text = f"{prompt} (take {round_ + 1})" if round_ else prompt  # new prompt: no KV cache reuse
                    a = raw_run(llm, text, args.max_tokens)
                    b = server_run(client, text, args.max_tokens)
                    if a.tokens != b.tokens:
                        print(f"  note: prompt {index} gave {a.tokens} tokens raw, {b.tokens} served")
                    raw.append(a)
                    served.append(b)
                    c = raw_run(llm, chat_prompt(llm, text), args.max_tokens)
                    d = messages_run(client, model_id, text, args.max_tokens)
                    if c.tokens != d.tokens:
                        print(f"  note: prompt {index} gave {c.tokens} tokens raw, {d.tokens} via /v1/messages")
                    raw_chat.append(c)
                    messages.append(d)
                    # a prompt of its own (the same text as (d) would find its prompt in the server's KV cache),
                    # measured raw too, so that (e) and (f) evaluate the same prompt
                    own = f"Reply to this: {text}"
                    raw_own.append(raw_run(llm, chat_prompt(llm, own), args.max_tokens))
                    responses.append(responses_run(client, model_id, own, args.max_tokens))
    finally:
        process.terminate()
        process.wait(timeout=30)
    rate_a, ttft_a = summary("(a) llama-cpp-python create_completion", raw)
    rate_b, ttft_b = summary("(b) reference server, HTTP stream", served)
    print(f"ratio (b)/(a) tokens/s: {rate_b / rate_a:.3f}   (target >= 0.95)")
    print(f"TTFT (b)-(a): {ttft_b - ttft_a:+.1f} ms   (target <= +20 ms)")
    rate_c, ttft_c = summary("(c) llama-cpp-python, chat prompt", raw_chat)
    rate_d, ttft_d = summary("(d) reference server, /v1/messages", messages)
    print(f"ratio (d)/(c) tokens/s: {rate_d / rate_c:.3f}   (target >= 0.95)")
    print(f"TTFT (d)-(c): {ttft_d - ttft_c:+.1f} ms   (target <= +20 ms)")
    rate_f, ttft_f = summary("(f) llama-cpp-python, chat prompt", raw_own)
    rate_e, ttft_e = summary("(e) reference server, /v1/responses", responses)
    print(f"ratio (e)/(f) tokens/s: {rate_e / rate_f:.3f}   (target >= 0.95)")
    print(f"TTFT (e)-(f): {ttft_e - ttft_f:+.1f} ms   (target <= +20 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
