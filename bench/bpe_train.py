"""Benchmark kata 17's BPE trainer on the tiny Shakespeare train split (the first 90%).

    python bench/bpe_train.py                 # 256+512 and 256+1,024 tokens, and the naive way
    python bench/bpe_train.py --naive-merges 0

Runs the reference (solutions/) unless GPT_KATAS_IMPL says otherwise, and measures:
  - the seconds to train to 256+512 and to 256+1,024 tokens (target: 1,024 merges < 30 s on
    a 2-core CPU), and the characters per token each vocabulary gives on the train split;
  - the seconds to encode the whole file (1.1 MB) with the 1,024-merge tokenizer;
  - the naive trainer, which recounts every pair of every piece after each merge: seconds
    per merge over its first --naive-merges merges (each merge costs about as much as the
    first, so 1,024 merges take about 1,024 times that).
Prints the figures and writes them to bench/results/bpe_train.txt. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import harness  # noqa: E402

harness.use(harness.program_impl())
from bpe import BPETokenizer, merge, split_pieces  # noqa: E402

from harness.data import fetch  # noqa: E402

RESULTS = harness.results_dir() / "bpe_train.txt"  # bench/results/ only with RECORD=1


def naive_seconds_per_merge(text: str, n_merges: int) -> float:
    """The textbook trainer: every occurrence of every piece, all pairs counted again per merge."""
    words = [list(piece.encode("utf-8")) for piece in split_pieces(text)]
    vocab = {i: bytes([i]) for i in range(256)}
    started = time.perf_counter()
    for r in range(n_merges):
        counts = Counter(pair for ids in words for pair in zip(ids, ids[1:]))
        best = max(counts, key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]]))
        vocab[256 + r] = vocab[best[0]] + vocab[best[1]]
        words = [merge(ids, best, 256 + r) for ids in words]
    return (time.perf_counter() - started) / n_merges


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--naive-merges",
        type=int,
        default=10,
        help="merges of the naive trainer to time (0: skip it)",
    )
    args = p.parse_args(argv)
    text = fetch.require("tinyshakespeare.txt").read_text()
    train = text[: int(len(text) * 0.9)]
    lines = [
        f"BPE training on the tiny Shakespeare train split ({len(train):,} characters); "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}, {harness.program_impl()}"
    ]
    tok = None
    for n_merges in (512, 1024):
        started = time.perf_counter()
        tok = BPETokenizer.train(train, 256 + n_merges)
        seconds = time.perf_counter() - started
        chars_per_token = len(train) / len(tok.encode(train))
        lines.append(
            f"train 256+{n_merges:,}: {seconds:.2f} s; {chars_per_token:.3f} characters "
            f"per token on the train split"
        )
    started = time.perf_counter()
    BPETokenizer.from_dict(tok.to_dict()).encode(text)  # a fresh cache
    lines.append(
        f"encode all {len(text):,} characters with 256+1,024: {time.perf_counter() - started:.2f} s"
    )
    if args.naive_merges > 0:
        per_merge = naive_seconds_per_merge(train, args.naive_merges)
        lines.append(
            f"naive trainer (recount everything per merge): {per_merge:.2f} s per merge "
            f"over {args.naive_merges} merges, so about {per_merge * 1024:.0f} s for "
            f"1,024"
        )
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"-> {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
