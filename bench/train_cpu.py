"""Benchmark the Shakespeare trainer on the CPU: tokens/s, best val, time to a target loss.

    python bench/train_cpu.py                          # both presets below, full runs
    python bench/train_cpu.py --preset nanogpt-cpu --steps 300     # throughput only

For each preset it runs scripts/train.py (the reference solutions unless GPT_KATAS_IMPL
says otherwise) as `make train` would, into runs/bench-<preset>, then reads metrics.csv:
  - tokens_per_s_median: tokens per second of the training steps (evaluations excluded),
    the median over the steps after the first 20 (start-up);
  - tokens_per_s_overall: all tokens trained / the training wall time, evaluations included;
  - best_val, best_step, and seconds_to_target: training time until the first evaluation
    with val loss <= --target (1.88, nanoGPT's CPU result);
  - train_seconds (training, from the first evaluation at step 0 to the last), and
    script_seconds (the whole scripts/train.py: data, training, plot, samples).
Results, with the machine's core count and load average (others' work slows a shared
machine down), go to bench/results/train_cpu.json. Nothing here asserts: it measures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import harness  # noqa: E402

RESULTS = harness.results_dir() / "train_cpu.json"  # bench/results/ only with RECORD=1


def measure(preset: str, steps: int | None, threads: int | None, target: float) -> dict:
    out = ROOT / "runs" / f"bench-{preset}"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--preset",
        preset,
        "--device",
        "cpu",
        "--out",
        str(out),
        "--samples",
        "1",
        "--overwrite",
    ]
    if steps:
        cmd += ["--steps", str(steps)]
    if threads:
        cmd += ["--threads", str(threads)]
    load_before = os.getloadavg()
    started = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    script_seconds = time.perf_counter() - started
    load_after = os.getloadavg()

    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps_rows = [r for r in rows if r["kind"] == "step"]
    evals = [r for r in rows if r["kind"] == "eval"]
    config = json.loads((out / "config.json").read_text())
    tokens_per_step = config["train"]["batch_size"] * config["model"]["block_size"]
    speeds = [float(r["tokens_per_s"]) for r in steps_rows[20:]] or [0.0]
    t0 = float(evals[0]["elapsed_s"])
    train_seconds = float(rows[-1]["elapsed_s"]) - t0
    best = min(evals, key=lambda r: float(r["val_loss"]))
    reached = [r for r in evals if float(r["val_loss"]) <= target]
    return {
        "preset": preset,
        "model": config["model"],
        "train": {
            k: config["train"][k]
            for k in (
                "batch_size",
                "max_steps",
                "lr",
                "min_lr",
                "warmup_steps",
                "eval_interval",
                "eval_iters",
                "patience",
            )
        },
        "steps_run": int(steps_rows[-1]["step"]) if steps_rows else 0,
        "tokens_per_s_median": round(statistics.median(speeds)),
        "tokens_per_s_overall": round(len(steps_rows) * tokens_per_step / train_seconds),
        "best_val": round(float(best["val_loss"]), 4),
        "best_step": int(best["step"]),
        "target_val": target,
        "seconds_to_target": round(float(reached[0]["elapsed_s"]) - t0, 1) if reached else None,
        "train_seconds": round(train_seconds, 1),
        "script_seconds": round(script_seconds, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", nargs="+", default=["cpu", "nanogpt-cpu"])
    p.add_argument("--steps", type=int, help="override max_steps (a throughput-only run)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--target", type=float, default=1.88)
    args = p.parse_args()

    import torch

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": args.threads or torch.get_num_threads(),
        "impl": harness.program_impl(),
    }
    for preset in args.preset:
        result = measure(preset, args.steps, args.threads, args.target)
        results[preset + (f" ({args.steps} steps)" if args.steps else "")] = result
        print(json.dumps(result, indent=2), flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        tmp = RESULTS.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp, RESULTS)
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
