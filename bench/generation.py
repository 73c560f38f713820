"""Benchmark generation with kata 16's modern model on the CPU: the static KV cache against
kata 11's growing torch.cat cache, and the rolling cache over a long run.

    nice .venv/bin/python bench/generation.py            # 500 and 2,000 tokens, 1 thread
    nice .venv/bin/python bench/generation.py --tokens 100 --long 400   # a quick look

Two measurements, with random weights (speed does not depend on training) of the `medium`
modern preset (6 layers, 6 query and 3 key/value heads, 384 dims, SwiGLU 1,168; ~10.76M
parameters):
  1. static vs growing: block_size 1,024 and no window, so both caches keep every position;
     a 16-token prompt, then --tokens new tokens one at a time (greedy), once with kata 15's
     StaticKVCache (written in place) and once with kata 09's KVCache (torch.cat per step).
     Both must give the same tokens; reported as tokens per second. The order alternates
     over --repeats rounds and the best round counts (others' work slows a shared machine).
  2. rolling: window 256 (block_size 256), --long new tokens with the rolling cache; the
     median time per token of the first 100 and of the last 100, their ratio (flat: <= 1.2),
     and the cache's bytes before and after.
Times are CPU seconds of this process (time.process_time; with 1 thread that is the work
done), since wall time on a shared machine counts others' work too; the wall seconds are
recorded beside them. Results go to bench/results/generation.json. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import harness  # noqa: E402

harness.use(harness.program_impl())

import torch  # noqa: E402
from gpt import KVCache  # noqa: E402
from gqa import sliding_window_mask  # noqa: E402
from modern import PRESETS, ModernGPT, new_cache  # noqa: E402

RESULTS = harness.results_dir() / "generation.json"  # bench/results/ only with RECORD=1


class GrowingCache(KVCache):
    """Kata 09's cache (torch.cat per step) with the update signature kata 15's attention
    expects: (keys, values, mask)."""

    window = None

    def update(self, layer, k, v):
        new = k.shape[2]
        k, v = super().update(layer, k, v)
        return k, v, sliding_window_mask(new, k.shape[2], None, k.device)


@torch.no_grad()
def run(model, prompt, n_tokens, cache) -> tuple[torch.Tensor, list[float]]:
    """Greedy generation through `cache`; the tokens and the CPU seconds each one took."""
    idx, feed, times = prompt, prompt, []
    for _ in range(n_tokens):
        started = time.process_time()
        logits, _ = model(feed, kv_cache=cache)
        feed = logits[:, -1].argmax(-1, keepdim=True)
        times.append(time.process_time() - started)
        idx = torch.cat([idx, feed], dim=1)
    return idx, times


def static_vs_growing(n_tokens: int, repeats: int) -> dict:
    config = replace(PRESETS["medium"], block_size=1024, window=None)
    torch.manual_seed(0)
    model = ModernGPT(config).eval()
    prompt = torch.randint(
        0, config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1)
    )
    best = {"static": float("inf"), "growing": float("inf")}
    wall = dict(best)
    tokens = {}
    for round_ in range(repeats):
        order = ("static", "growing") if round_ % 2 == 0 else ("growing", "static")
        for kind in order:
            cache = new_cache(model, 1) if kind == "static" else GrowingCache(config.n_layer)
            started = time.perf_counter()
            tokens[kind], times = run(model, prompt, n_tokens, cache)
            best[kind] = min(best[kind], sum(times))
            wall[kind] = min(wall[kind], time.perf_counter() - started)
    return {
        "config": f"medium modern, block 1024, no window, {model.num_params():,} params",
        "new_tokens": n_tokens,
        "repeats": repeats,
        "static_tokens_per_s": round(n_tokens / best["static"], 1),
        "growing_tokens_per_s": round(n_tokens / best["growing"], 1),
        "static_over_growing": round(best["growing"] / best["static"], 3),
        "wall_seconds": {k: round(v, 2) for k, v in wall.items()},
        "same_tokens": bool(torch.equal(tokens["static"], tokens["growing"])),
    }


def rolling(n_tokens: int) -> dict:
    config = PRESETS["medium"]  # window 256 = block_size: a rolling buffer of 256 slots
    torch.manual_seed(0)
    model = ModernGPT(config).eval()
    prompt = torch.randint(
        0, config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1)
    )
    cache = new_cache(model, 1)
    before = cache.nbytes()
    _, times = run(model, prompt, n_tokens, cache)
    first, last = statistics.median(times[1:101]), statistics.median(times[-100:])
    return {
        "config": f"medium modern, window {config.window}",
        "new_tokens": n_tokens,
        "positions_written": len(cache),
        "block_size": config.block_size,
        "first_100_ms_per_token": round(1000 * first, 2),
        "last_100_ms_per_token": round(1000 * last, 2),
        "last_over_first": round(last / first, 3),
        "cache_bytes_before": before,
        "cache_bytes_after": cache.nbytes(),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=500, help="new tokens, static vs growing")
    p.add_argument("--long", type=int, default=2000, help="new tokens with the rolling cache")
    p.add_argument("--repeats", type=int, default=3, help="rounds of static vs growing")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    versus = static_vs_growing(args.tokens, args.repeats)
    print(
        f"{versus['new_tokens']} tokens, {versus['config']}: static cache "
        f"{versus['static_tokens_per_s']} tok/s, growing torch.cat cache "
        f"{versus['growing_tokens_per_s']} tok/s (static {versus['static_over_growing']}x; "
        f"same tokens: {versus['same_tokens']})",
        flush=True,
    )
    roll = rolling(args.long)
    print(
        f"{roll['new_tokens']} tokens, {roll['config']} (block {roll['block_size']}): "
        f"first 100 {roll['first_100_ms_per_token']} ms/token, last 100 "
        f"{roll['last_100_ms_per_token']} ms/token ({roll['last_over_first']}x); cache "
        f"{roll['cache_bytes_before']:,} bytes before, {roll['cache_bytes_after']:,} after"
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "static_vs_growing": versus,
                "rolling": roll,
                "threads": args.threads,
                "machine": {
                    "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(),
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                },
                "impl": harness.program_impl(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"-> {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
