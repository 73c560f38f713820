"""`make posttrain-bench`: what each post-training stage buys, 3 seeds, mean ± sd.

    python bench/posttrain.py             # the whole track (configs/posttrain.json) per seed
    python bench/posttrain.py --quick     # configs/posttrain-tiny.json, one seed: a smoke test
    python bench/posttrain.py --reuse-base  # keep each seed's base model if its settings match

For each seed, the track's programs run one after another, as `make posttrain` runs them
(scripts/base_train.py, chat_sft.py, chat_dpo.py, chat_grpo.py, each with --seed), into
runs/posttrain-bench/seed<N>/. The table: held-out accuracy per task kind of the base model
(prompted with the chat template), SFT, SFT + DPO and SFT + GRPO, over the same held-out
tasks; the minutes each stage took (wall clock and this process's CPU time, its evaluation
left out); GRPO's reward curve (the mean reward of each step's sampled replies on the train
tasks) as a plot. Results: posttrain.{json,md,png} in runs/bench/ (bench/results/ with
RECORD=1; never with --quick).
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import experiments as ex

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
STAGES = {
    "base": "base_train.py",
    "sft": "chat_sft.py",
    "dpo": "chat_dpo.py",
    "grpo": "chat_grpo.py",
}
ROWS = {"base": "base (prompted)", "sft": "SFT", "dpo": "SFT + DPO", "grpo": "SFT + GRPO"}
KINDS = ("reverse", "count", "all")


def base_to_reuse(out: Path, seed: int, config: Path) -> bool:
    """True when out/base already holds a finished base run of this seed with the config's
    base settings (the model and every train setting the config gives): --reuse-base."""
    try:
        held = json.loads((out / "base" / "config.json").read_text())
        json.loads((out / "base" / "eval.json").read_text())
    except (OSError, ValueError):
        return False
    wanted = json.loads(config.read_text())["base"]
    same = all(held["model"].get(k) == v for k, v in wanted["model"].items()) and all(
        held["train"].get(k) == v for k, v in {**wanted["train"], "seed": seed}.items()
    )
    return same and (out / "base" / "best.pt").is_file()


def run_track(
    out: Path, seed: int, config: Path, device: str, threads: int, reuse_base: bool = False
) -> dict:
    """The four stages for one seed; returns each stage's eval.json and GRPO's rewards.
    With reuse_base, a base run already there with the same settings is kept (its record,
    minutes included, is the one it wrote), and the chat stages start from it."""
    common = [
        "--out",
        str(out),
        "--config",
        str(config),
        "--seed",
        str(seed),
        "--device",
        device,
        "--threads",
        str(threads),
        "--overwrite",
    ]
    for stage, script in STAGES.items():
        if stage == "base" and reuse_base and base_to_reuse(out, seed, config):
            print(f"seed {seed} base: reused {out / 'base'} (same settings)", flush=True)
            continue
        done = subprocess.run(
            ["nice", sys.executable, str(SCRIPTS / script), *common],
            cwd=ROOT,
            env=os.environ,
            capture_output=True,
            text=True,
        )
        lines = [line for line in done.stdout.splitlines() if "held-out accuracy" in line]
        print(f"seed {seed} {stage}: {lines[-1] if lines else done.stdout[-300:]}", flush=True)
        if done.returncode != 0:
            raise SystemExit(
                f"{script} (seed {seed}) exited {done.returncode}:\n{done.stderr[-3000:]}"
            )
    record = {stage: json.loads((out / stage / "eval.json").read_text()) for stage in STAGES}
    with open(out / "grpo" / "metrics.csv", newline="") as f:
        record["grpo_reward"] = [float(row["reward"]) for row in csv.DictReader(f)]
    return record


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(per_seed: list[dict]) -> dict:
    summary = {}
    for stage in STAGES:
        records = [seed[stage] for seed in per_seed]
        summary[stage] = {
            **{
                kind: mean_sd([100 * r["heldout_accuracy"][kind] for r in records])
                for kind in KINDS
            },
            "minutes": mean_sd([r["train_s"] / 60 for r in records]),
            "cpu_minutes": mean_sd([r["train_cpu_s"] / 60 for r in records]),
        }
    lift = [
        100 * (s["grpo"]["heldout_accuracy"]["all"] - s["sft"]["heldout_accuracy"]["all"])
        for s in per_seed
    ]
    summary["grpo_lift_points"] = mean_sd(lift)
    return summary


def table(results: dict) -> str:
    s, n = results["summary"], len(results["seeds"])
    lines = [
        f"Held-out accuracy (%) on {results['eval_tasks']} tasks about names never trained "
        f"on, mean ± sd over {n} seed{'s' if n > 1 else ''}; minutes of training per "
        "stage (wall clock, and this process's CPU time) on a shared 2-core CPU, where "
        "other jobs ran at the same time, so the wall clock is inflated",
        "",
        "| model | reverse | count | all | minutes (wall) | minutes (CPU) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for stage, name in ROWS.items():
        row = s[stage]
        cells = [f"{row[k][0]:.1f} ± {row[k][1]:.1f}" for k in KINDS]
        lines.append(
            f"| {name} | {' | '.join(cells)} | {row['minutes'][0]:.2f} ± "
            f"{row['minutes'][1]:.2f} | {row['cpu_minutes'][0]:.2f} ± "
            f"{row['cpu_minutes'][1]:.2f} |"
        )
    lift = s["grpo_lift_points"]
    total = sum(s[stage]["minutes"][0] for stage in STAGES)
    lines += [
        "",
        f"GRPO over its SFT start: {lift[0]:+.1f} ± {lift[1]:.1f} points (all tasks); "
        f"the whole track: {total:.1f} min wall per seed.",
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for seed, record in zip(results["seeds"], results["per_seed"], strict=True):
        reward = record["grpo_reward"]
        smooth = [statistics.mean(reward[max(0, i - 9) : i + 1]) for i in range(len(reward))]
        steps = range(1, len(reward) + 1)
        (line,) = ax.plot(steps, smooth, label=f"seed {seed} (running mean of 10)")
        ax.plot(steps, reward, alpha=0.2, color=line.get_color())
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward of the step's replies")
    ax.set_title("GRPO's reward on the train tasks (1 = every sampled reply right)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = ex.parser("posttrain", __doc__)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument(
        "--parallel",
        action="store_true",
        help="run the seeds at the same time (one process each; on a machine with cores to spare)",
    )
    p.add_argument(
        "--reuse-base",
        action="store_true",
        help="keep each seed's base model "
        "when runs/posttrain-bench/seed<N>/base already holds one with the same "
        "settings (the chat stages are rerun; the base row is the one it recorded)",
    )
    p.set_defaults(runs=str(ROOT / "runs" / "posttrain-bench"))
    args = p.parse_args()
    device, runs, results_dir = ex.start(p, args)
    config = ROOT / "configs" / ("posttrain-tiny.json" if args.quick else "posttrain.json")
    seeds = args.seeds[:1] if args.quick else args.seeds
    started = time.perf_counter()
    with ThreadPoolExecutor(len(seeds) if args.parallel else 1) as pool:
        per_seed = list(
            pool.map(
                lambda seed: run_track(
                    runs / f"seed{seed}", seed, config, device, args.threads, args.reuse_base
                ),
                seeds,
            )
        )
    results = {
        "config": json.loads(config.read_text()),
        "seeds": seeds,
        "seeds_at_once": len(seeds) if args.parallel else 1,
        "eval_tasks": per_seed[0]["sft"]["eval_tasks"],
        "machine": ex.machine(device),
        "summary": summarize(per_seed),
        "per_seed": per_seed,
    }
    ex.finish("posttrain", results, started, results_dir, table, plot)


if __name__ == "__main__":
    main()
