"""Benchmark: how long microGPT (kata 08) takes to train, and how well it learns.

    make bench                     # 1,000 steps of the reference, as `make microgpt` runs them
    python bench/microgpt.py --steps 200

Prints steps per second, total time and the mean loss over the last 100 steps, and writes
them to bench/results/microgpt.json. Nothing here asserts on time. The target (on a 2-core
CI machine): 1,000 steps in at most 95 s, aiming for 45 s, with a final mean loss <= 2.30.
A public single-file pure-Python version of the same model takes about 380 ms a step.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402
from harness.data import fetch  # noqa: E402

IMPL = harness.program_impl()
harness.use(IMPL)  # must come before the first `import microgpt`

RESULTS = harness.results_dir() / "microgpt.json"  # bench/results/ only with RECORD=1
TARGET_S, AIM_S, TARGET_LOSS = 95.0, 45.0, 2.30  # for 1,000 steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    parser.add_argument("--seed", type=int, default=42, help="the seed (default 42)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON file (default {RESULTS.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    try:
        names = fetch.require("names.txt").read_text().split()
    except fetch.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    import microgpt

    random.Random(args.seed).shuffle(names)
    sequences = [microgpt.encode(name) for name in names]
    params = microgpt.init_params(args.seed)

    gc.disable()  # as scripts/microgpt.py does: the graphs have no cycles to collect
    losses = []
    wall, cpu = time.perf_counter(), time.process_time()
    for step, loss in enumerate(microgpt.train(params, sequences, args.steps)):
        losses.append(loss)
        if (step + 1) % 100 == 0:
            print(
                f"  step {step + 1:5d}  {time.perf_counter() - wall:6.1f} s  loss {loss:.4f}",
                flush=True,
            )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    gc.enable()

    last = losses[-100:]
    figures = {
        "benchmark": "microgpt training, one name per step",
        "impl": IMPL,
        "steps": args.steps,
        "seed": args.seed,
        "total_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "steps_per_s": round(args.steps / wall, 2),
        "ms_per_step": round(1000 * wall / args.steps, 2),
        "initial_loss": round(losses[0], 4),
        "final_mean_loss": round(sum(last) / len(last), 4),
        "final_mean_loss_over": len(last),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
    }
    print(f"steps/s          {figures['steps_per_s']}")
    print(
        f"total time       {wall:.1f} s for {args.steps} steps "
        f"({figures['ms_per_step']} ms/step, {cpu:.1f} s of CPU)"
    )
    if cpu < 0.8 * wall:
        print(
            "                 (CPU time well under wall time: the machine was busy with "
            "something else, so compare CPU times)"
        )
    print(f"final mean loss  {figures['final_mean_loss']} (last {len(last)} steps)")
    if args.steps == 1000:
        print(
            f"targets          <= {TARGET_S:.0f} s (aim {AIM_S:.0f} s), "
            f"final mean loss <= {TARGET_LOSS}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
