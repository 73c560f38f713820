"""Benchmark: the KV cache's memory per generated token for MHA, GQA, MQA and a sliding window.

    make bench
    python bench/kv_cache.py --tokens 2048

At the medium size (6 layers, 6 heads, n_embd 384, so head_dim 64; float32, batch 1) it runs
six of kata 15's GroupedQueryAttention layers (random weights: the memory does not depend on
them) over --tokens positions with a StaticKVCache, a 16-token prompt and then one token at a
time, as generation does. After every step it reads the cache's bytes from its tensors
(StaticKVCache.nbytes) and compares them with the formula
2 · n_layer · n_kv_head · head_dim · bytes per cached position. Prints a table and writes it
to bench/results/kv_cache.txt. For contrast, the last row runs kata 09's attention with
kata 09's KVCache, which grows by torch.cat. Nothing here asserts: it measures.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402

IMPL = harness.program_impl()
harness.use(IMPL)  # must come before the first kata import

import torch  # noqa: E402

RESULTS = harness.results_dir() / "kv_cache.txt"  # bench/results/ only with RECORD=1
N_LAYER, N_HEAD, N_EMBD, PROMPT = 6, 6, 384, 16
HEAD_DIM = N_EMBD // N_HEAD
CONFIGS = [  # name, n_kv_head, window
    ("MHA", 6, None),
    ("GQA n_kv_head=3", 3, None),
    ("GQA n_kv_head=2", 2, None),
    ("MQA n_kv_head=1", 1, None),
    ("MHA + window 64", 6, 64),
    ("GQA 2 + window 64", 2, 64),
    ("kata 09 cat cache", None, None),  # MHA, growing by torch.cat
]


@torch.no_grad()
def measure(n_kv_head: int, window: int | None, tokens: int) -> dict:
    """Generate `tokens` positions through the layers; the cache's bytes after every step.
    n_kv_head None: kata 09's attention and growing KVCache instead."""
    from gpt import CausalSelfAttention, GPTConfig, KVCache
    from gqa import GroupedQueryAttention, StaticKVCache

    torch.manual_seed(0)
    if n_kv_head is None:
        config = GPTConfig(n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD)
        layers = [CausalSelfAttention(config).eval() for _ in range(N_LAYER)]
        cache = KVCache(N_LAYER)

        def nbytes():
            return sum(t.nbytes for t in cache.keys + cache.values)
    else:
        layers = [
            GroupedQueryAttention(N_EMBD, N_HEAD, n_kv_head, window=window).eval()
            for _ in range(N_LAYER)
        ]
        cache = StaticKVCache(N_LAYER, 1, n_kv_head, HEAD_DIM, max_len=tokens, window=window)
        nbytes = cache.nbytes
    sizes = []
    x = torch.randn(1, tokens, N_EMBD)
    for start, end in [(0, PROMPT)] + [(t, t + 1) for t in range(PROMPT, tokens)]:
        h = x[:, start:end]
        for i, layer in enumerate(layers):
            h = h + layer(h, kv_cache=cache, layer=i)
        sizes.append(nbytes())
    slots = tokens if window is None else window
    return {
        "bytes": sizes[-1],
        "min": min(sizes),
        "max": max(sizes),
        "slots": slots,
        "positions": len(cache),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tokens",
        type=int,
        default=512,
        help="positions to generate (default 512, twice block_size 256)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"text file (default {RESULTS.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    if args.tokens <= PROMPT:
        parser.error(f"--tokens must be more than the {PROMPT}-token prompt, got {args.tokens}")
    torch.set_num_threads(1)
    from gpt import GPT, PRESETS  # kata 09, for the size of the weights

    started = time.perf_counter()
    lines = [
        f"KV cache memory, medium size ({N_LAYER} layers, {N_HEAD} heads, n_embd {N_EMBD}, "
        f"head_dim {HEAD_DIM}), float32, batch 1,",
        f"{args.tokens} positions generated ({PROMPT}-token prompt, then one at a time); "
        f"impl={IMPL}, torch {torch.__version__}, {platform.machine()}",
        "",
        f"{'configuration':<20}{'slots':>7}{'cache bytes':>14}{'per slot':>10}"
        f"{'formula':>9}{'per token':>11}{'vs MHA':>8}  constant?",
    ]
    mha_per_token = None
    for name, n_kv_head, window in CONFIGS:
        m = measure(n_kv_head, window, args.tokens)
        per_slot = m["bytes"] / m["slots"]
        formula = 2 * N_LAYER * (n_kv_head or N_HEAD) * HEAD_DIM * 4
        per_token = m["bytes"] / m["positions"]
        mha_per_token = mha_per_token or per_token
        constant = "yes" if m["min"] == m["max"] else f"no ({m['min']:,} .. {m['max']:,})"
        lines.append(
            f"{name:<20}{m['slots']:>7}{m['bytes']:>14,}{per_slot:>10,.0f}"
            f"{formula:>9,}{per_token:>11,.0f}{mha_per_token / per_token:>7.1f}x  "
            f"{constant}"
        )
    weights = GPT(PRESETS["medium"]).num_params() * 4
    mha_slot = 2 * N_LAYER * N_HEAD * HEAD_DIM * 4
    lines += [
        "",
        "per slot: bytes per cached position (nbytes / slots); formula: 2 * n_layer * "
        "n_kv_head * head_dim * 4;",
        f"per token: cache bytes / {args.tokens} positions generated (a window's cache "
        "stops growing at its slots).",
        f"For scale: the medium GPT's weights take {weights:,} bytes in float32; an MHA "
        f"cache for a batch of 64 x 256 tokens takes {64 * 256 * mha_slot:,} "
        f"({64 * 256 * mha_slot / weights:.1f} times the weights).",
        f"({time.perf_counter() - started:.1f} s)",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(harness.run_program(main))
