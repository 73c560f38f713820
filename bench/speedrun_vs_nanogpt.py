"""`make speedrun` against nanoGPT's own train.py at its documented CPU setting, on this
machine, in one measurement: seconds from each command's start to its first evaluation with
val loss <= --target (1.88, what nanoGPT's README reports for that setting).

    python bench/speedrun_vs_nanogpt.py --nanogpt /path/to/nanoGPT      # a checkout or git dir
    NANOGPT=/path/to/nanoGPT python bench/speedrun_vs_nanogpt.py --pairs 3

nanoGPT is a benchmark dependency, never part of this repository: give a clone of
https://github.com/karpathy/nanoGPT (a work tree, or a bare git directory, whose HEAD is
used). Its train.py, model.py, configurator.py and config/ are copied into a temporary
directory with the data its data/shakespeare_char/prepare.py would make (our
data/tinyshakespeare.txt, characters sorted, 90% train / 10% val, uint16 ids, meta.pkl),
made here without the network. Then, --pairs times, one after the other (never at once: they
would share the cores), in alternating order:
  - nanoGPT: python train.py config/train_shakespeare_char.py --device=cpu --compile=False
    --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
    --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0 (its README's command;
    --dtype=float32 too: on a CPU its autocast is off anyway, and this keeps its GradScaler off);
  - ours: make speedrun (scripts/speedrun.py; it stops at the target itself), once for each
    of --seeds (default 1337, 1, 2: a recipe that crosses the target with one seed's luck
    only does not count). nanoGPT's train.py has one seed, 1337.
Each command's eval lines are read as they are printed and timed from the command's start.
Our figure is the median over all our runs of the seconds to the target, a run that never
reaches it counting as slowest. Results: runs/bench/speedrun_vs_nanogpt.json
(bench/results/ with RECORD=1), with the load average (a shared machine slows both; compare
within one measurement). Nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import harness  # noqa: E402

RESULTS = harness.results_dir() / "speedrun_vs_nanogpt.json"  # bench/results/ with RECORD=1
NANOGPT_FILES = ["train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py"]
NANOGPT_ARGS = [
    "config/train_shakespeare_char.py",
    "--device=cpu",
    "--compile=False",
    "--eval_iters=20",
    "--log_interval=1",
    "--block_size=64",
    "--batch_size=12",
    "--n_layer=4",
    "--n_head=4",
    "--n_embd=128",
    "--max_iters=2000",
    "--lr_decay_iters=2000",
    "--dropout=0.0",
    "--dtype=float32",
]
# "step 250: train loss 1.9, val loss 1.95" (nanoGPT), "step   250: train 1.9, val 1.95" (ours)
EVAL_LINE = re.compile(r"step\s+(\d+): train (?:loss )?([\d.]+), val (?:loss )?([\d.]+)")


def copy_nanogpt(source: Path, into: Path) -> str:
    """nanoGPT's files into `into`; returns the commit (or 'work tree')."""
    if (source / "train.py").is_file():
        for name in NANOGPT_FILES:
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / name, into / name)
        return "work tree"
    git = ["git", f"--git-dir={source}"]
    for name in NANOGPT_FILES:
        text = subprocess.run(
            [*git, "show", f"HEAD:{name}"], check=True, capture_output=True
        ).stdout
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_bytes(text)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def prepare_shakespeare_char(text: str, into: Path) -> None:
    """What nanoGPT's data/shakespeare_char/prepare.py writes, from our copy of the text."""
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([stoi[ch] for ch in text], dtype=np.uint16)
    n = int(len(ids) * 0.9)
    out = into / "data" / "shakespeare_char"
    out.mkdir(parents=True, exist_ok=True)
    ids[:n].tofile(out / "train.bin")
    ids[n:].tofile(out / "val.bin")
    with open(out / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)


def timed(cmd: list[str], cwd: Path, target: float, env: dict) -> dict:
    """Run cmd; the time of each eval line from the start; the first one at or below target."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    evals, reached = [], None
    for line in proc.stdout:
        match = EVAL_LINE.search(line)
        if match:
            at = round(time.perf_counter() - started, 1)
            step, val = int(match.group(1)), float(match.group(3))
            evals.append({"step": step, "val": val, "seconds": at})
            print(f"  [{at:6.1f} s] step {step}: val {val:.4f}", flush=True)
            if reached is None and val <= target:
                reached = evals[-1]
    code = proc.wait()
    seconds = round(time.perf_counter() - started, 1)
    if code not in (0, 1) or not evals:  # speedrun exits 1 when it misses the target
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}) in {cwd}")
    best = min(evals, key=lambda e: e["val"])
    return {
        "seconds_to_target": reached["seconds"] if reached else None,
        "step_at_target": reached["step"] if reached else None,
        "best_val": best["val"],
        "best_step": best["step"],
        "command_seconds": seconds,
        "evals": evals,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--nanogpt",
        default=os.environ.get("NANOGPT"),
        help="a nanoGPT clone: work tree or git directory (or $NANOGPT)",
    )
    p.add_argument("--pairs", type=int, default=1, help="nanoGPT + speedrun pairs (default 1)")
    p.add_argument("--target", type=float, default=1.88)
    p.add_argument(
        "--seeds",
        default="1337,1,2",
        help="our speedrun's seeds, comma-separated; each pair runs all of them (default 1337,1,2)",
    )
    p.add_argument("--threads", type=int, help="torch threads for both (OMP_NUM_THREADS)")
    p.add_argument(
        "--speedrun",
        nargs=argparse.REMAINDER,
        default=[],
        help="more flags for scripts/speedrun.py (e.g. --optim muon)",
    )
    args = p.parse_args(argv)
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds {args.seeds}: give whole numbers separated by commas, e.g. 1337,1,2")
    if not args.nanogpt or not Path(args.nanogpt).exists():
        print(
            "give a nanoGPT clone: --nanogpt DIR or NANOGPT=DIR (git clone "
            "https://github.com/karpathy/nanoGPT)",
            file=sys.stderr,
        )
        return 2

    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    ours_cmd = [
        sys.executable,
        str(ROOT / "scripts" / "speedrun.py"),
        "--target-val",
        str(args.target),
        "--device",
        "cpu",
        "--samples",
        "0",
        *args.speedrun,
    ]
    if args.threads:
        ours_cmd += ["--threads", str(args.threads)]
    text = (ROOT / "data" / "tinyshakespeare.txt").read_text()
    runs = {"nanogpt": [], "speedrun": []}
    with tempfile.TemporaryDirectory(prefix="nanogpt-") as tmp:
        work = Path(tmp)
        commit = copy_nanogpt(Path(args.nanogpt), work)
        prepare_shakespeare_char(text, work)
        nanogpt_cmd = [sys.executable, "train.py", *NANOGPT_ARGS]
        for pair in range(args.pairs):
            order = ["nanogpt", "speedrun"] if pair % 2 == 0 else ["speedrun", "nanogpt"]
            for name in order:
                print(f"pair {pair + 1}: {name}", flush=True)
                if name == "nanogpt":
                    runs[name].append(timed(nanogpt_cmd, work, args.target, env))
                    continue
                for seed in seeds:
                    print(f"  seed {seed}", flush=True)
                    out = ["--out", str(work / "speedrun"), "--seed", str(seed)]
                    runs[name].append(
                        {"seed": seed, **timed([*ours_cmd, *out], ROOT, args.target, env)}
                    )

    def median(name: str, key: str):
        """The median run's value; a run without one (the target missed) counts as slowest."""
        values = sorted((r[key] for r in runs[name]), key=lambda v: math.inf if v is None else v)
        middle = values[(len(values) - 1) // 2 : len(values) // 2 + 1]
        if None in middle:
            return None
        return round(statistics.mean(middle), 1)

    result = {
        "target_val": args.target,
        "pairs": args.pairs,
        "seeds": seeds,
        "nanogpt_commit": commit,
        "nanogpt_command": " ".join(["python train.py", *NANOGPT_ARGS]),
        "speedrun_command": " ".join(["python scripts/speedrun.py", *ours_cmd[2:], "--seed S"])
        + f" for S in {args.seeds}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "threads": args.threads,
        },
    }
    for name in runs:
        result[name] = {
            "median_seconds_to_target": median(name, "seconds_to_target"),
            "median_command_seconds": median(name, "command_seconds"),
            "runs": runs[name],
        }
    ours = result["speedrun"]["median_seconds_to_target"]
    theirs_full = result["nanogpt"]["median_command_seconds"]
    theirs = result["nanogpt"]["median_seconds_to_target"]
    if ours:
        result["nanogpt_full_run_over_speedrun"] = round(theirs_full / ours, 2)
        if theirs:
            result["nanogpt_to_target_over_speedrun"] = round(theirs / ours, 2)
    print(
        f"nanoGPT train.py: {theirs_full} s for its 2,000 steps, target val <= "
        f"{args.target} {f'reached after {theirs} s' if theirs else 'not reached'} (best "
        f"{min(r['best_val'] for r in runs['nanogpt']):.4f}); make speedrun: "
        f"{f'reached after {ours} s' if ours else 'not reached'}"
        + (
            f"; nanoGPT's full run / speedrun = {result['nanogpt_full_run_over_speedrun']}x"
            if ours
            else ""
        )
    )
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[f"cpu (threads {args.threads or 'default'})"] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = RESULTS.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp_path, RESULTS)
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
