"""Train microGPT (kata 08) on names, then make up new ones.

    make microgpt                                   # the reference, 1,000 steps (~30-60 s)
    make microgpt STEPS=300 SEED=1 TEMPERATURE=0.8  # the options
    make microgpt IMPL=katas                        # your own katas 01-08 instead

or directly: python scripts/microgpt.py --help. It runs the reference solutions unless
GPT_KATAS_IMPL=katas says otherwise (GPT_KATAS_REF=01-07 mixes the two, as in the specs).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

import harness  # noqa: E402
from harness.data import fetch  # noqa: E402

IMPL = harness.program_impl()
harness.use(IMPL)  # must come before the first `import microgpt`


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train the 4,192-parameter microGPT on data/names.txt, one name per step, "
        "then sample names from it."
    )
    parser.add_argument(
        "--steps", type=int, default=1000, help="training steps, one name each (default 1000)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seeds the weights, the order of the names and the samples (default 42)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.5,
        help="sampling temperature, > 0: lower is safer, higher is wilder (default 0.5)",
    )
    parser.add_argument(
        "--samples", type=int, default=20, help="how many names to make up (default 20)"
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    if not args.temperature > 0:
        parser.error(f"--temperature must be > 0, got {args.temperature}")
    if args.samples < 0:
        parser.error(f"--samples must be >= 0, got {args.samples}")
    return args


def loss_curve_summary(losses: list[float]) -> list[str]:
    """One line per tenth of the run (mean loss), then the two figures that matter."""
    window = max(1, len(losses) // 10)
    lines = [f"loss curve (mean over each {window} steps):"]
    for start in range(0, len(losses), window):
        chunk = losses[start : start + window]
        mean = sum(chunk) / len(chunk)
        lines.append(f"  steps {start + 1:>5}-{start + len(chunk):<5} {mean:.4f}")
    last = losses[-100:]
    lines.append(
        f"initial loss {losses[0]:.4f} (guessing uniformly scores ln 27 = {math.log(27):.4f})"
    )
    lines.append(f"mean loss over the last {len(last)} steps {sum(last) / len(last):.4f}")
    return lines


def progress_line(losses: list[float], steps: int, elapsed: float) -> str:
    """Where training is, for output that is not a terminal (no progress bar there)."""
    done = len(losses)
    left = (steps - done) * elapsed / done
    recent = losses[-max(1, steps // 10) :]
    return (
        f"  step {done}/{steps}: mean loss {sum(recent) / len(recent):.4f} over the last "
        f"{len(recent)} steps [{elapsed:.0f}s, about {left:.0f}s left]"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names = fetch.require("names.txt").read_text().split()
    except fetch.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    import microgpt

    random.Random(args.seed).shuffle(names)  # a fixed order for a given seed
    sequences = [microgpt.encode(name) for name in names]
    params = microgpt.init_params(args.seed)
    print(
        f"microGPT from {IMPL}/: {len(microgpt.parameters(params)):,} parameters, "
        f"{len(names):,} names, {args.steps:,} steps"
    )

    # A step's graph has no reference cycles, so reference counting frees it; the cyclic
    # garbage collector would only re-scan ~100,000 live nodes again and again.
    gc.disable()
    losses = []
    # On a terminal, tqdm's bar; in a log file (no terminal) its frames would pile up, so
    # then a plain line at each tenth of the run instead.
    plain = not sys.stderr.isatty()
    every, started = max(1, args.steps // 10), time.perf_counter()
    with tqdm(
        microgpt.train(params, sequences, args.steps),
        total=args.steps,
        desc="training",
        unit="step",
        disable=plain,
    ) as bar:
        for loss in bar:
            losses.append(loss)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            if plain and (len(losses) % every == 0 or len(losses) == args.steps):
                print(progress_line(losses, args.steps, time.perf_counter() - started), flush=True)
    gc.enable()

    print("\n".join(loss_curve_summary(losses)))
    rng = random.Random(args.seed)
    print(f"\n{args.samples} names at temperature {args.temperature}:")
    for i in range(args.samples):
        print(f"  {i + 1:2d}  {microgpt.sample(params, rng, args.temperature)}")
    return 0


if __name__ == "__main__":
    sys.exit(harness.run_program(main))
