"""Prompt evaluation in llama-cpp-python by batch layout, with and without flash attention, interleaved.

Run: .venv/bin/python bench/prompt_eval.py [--runs N] [--threads N]
The long prompt of bench/server_overhead.py (about 1000 tokens) is evaluated from an empty KV cache in batches
of 32, 128 and 512 tokens (the last batch takes the rest), and as the reference server batches it (at most
n_batch, none under MIN_BATCH tokens), each with flash attention off and on; then 100 tokens are decoded
greedily one by one. Printed per layout: the median and [min-max] prompt time and decode tokens/s over the runs,
and whether the last logits are bit-identical to those of the server's layout with the same attention (what
decides whether cached prefixes evaluated one way can be reused by a prompt evaluated another way).
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import llama_cpp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server_overhead import long_prompt  # noqa: E402  # after the sys.path insert
from reference_server.engine import prompt_batches  # noqa: E402  # after the sys.path insert
from reference_server.model import LlamaSettings, default_model_path  # noqa: E402  # after the sys.path insert

DECODED = 100


def uniform(count: int, size: int) -> list[int]:
    return [size] * (count // size) + ([count % size] if count % size else [])


def last_logits(llm: llama_cpp.Llama) -> np.ndarray:
    pointer = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).copy()


def measure(llm: llama_cpp.Llama, tokens: list[int], sizes: list[int]) -> tuple[float, float, np.ndarray]:
    """Prompt seconds, decode tokens/s, and the prompt's last logits."""
    llm.reset()  # type: ignore[no-untyped-call]  # untyped in llama-cpp-python
    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    started = time.perf_counter()
    position = 0
    for size in sizes:
        llm.eval(tokens[position : position + size])
        position += size
    prompt_s = time.perf_counter() - started
    logits = last_logits(llm)
    started = time.perf_counter()
    token = int(np.argmax(logits))
    for _ in range(DECODED):
        llm.eval([token])
        token = int(np.argmax(last_logits(llm)))
    return prompt_s, DECODED / (time.perf_counter() - started), logits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each layout (default 5)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    settings = LlamaSettings(n_threads=args.threads)
    model = default_model_path()
    sides = {
        flash: llama_cpp.Llama(
            model_path=str(model),
            n_ctx=settings.n_ctx,
            n_batch=settings.n_batch,
            n_threads=settings.n_threads,
            n_threads_batch=settings.n_threads,
            flash_attn=flash,
            verbose=False,
        )
        for flash in (False, True)
    }
    vocab = sides[False]
    text = "Run 1. " + long_prompt(lambda part: len(vocab.tokenize(part.encode(), add_bos=False)))
    tokens = vocab.tokenize(text.encode(), add_bos=False)
    layouts = {
        "batches of 32": uniform(len(tokens), 32),
        "batches of 128": uniform(len(tokens), 128),
        "batches of 512": uniform(len(tokens), 512),
        "server's batches": prompt_batches(len(tokens), settings.n_batch),
    }
    print(f"model {model.name}, {len(tokens)} prompt tokens, n_threads {settings.n_threads}, {args.runs} runs")
    print("server's batches:", layouts["server's batches"])
    results: dict[tuple[bool, str], list[tuple[float, float, np.ndarray]]] = {}
    for _ in range(args.runs):
        for flash, llm in sides.items():
            for name, sizes in layouts.items():
                results.setdefault((flash, name), []).append(measure(llm, tokens, sizes))
    for (flash, name), runs in results.items():
        prompt = [run[0] * 1000 for run in runs]
        decode = [run[1] for run in runs]
        reference = results[(flash, "server's batches")][0][2]
        same = all(np.array_equal(run[2], reference) for run in runs)
        print(
            f"flash attention {'on ' if flash else 'off'}  {name:17}"
            f"prompt {statistics.median(prompt):6.0f} ms [{min(prompt):.0f}-{max(prompt):.0f}]   "
            f"decode {statistics.median(decode):5.1f} tok/s [{min(decode):.1f}-{max(decode):.1f}]   "
            f"logits {'identical to' if same else 'differ from'} the server's batches"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
