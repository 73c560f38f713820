"""Kata 19's experiment: a sparse mixture of experts against the dense modern model with the
same ACTIVE parameters, on tiny Shakespeare, per step and per second.

    python bench/moe.py            # CPU: the cpu preset's size, 150 steps, 3 arms x 1 seed
    python bench/moe.py --arms moe --part     # one arm, to bench/results/moe-part-moe.json
    python bench/moe.py --merge bench/results/moe-part-*.json   # the parts -> moe.{json,md,png}

The parts let the arms run at the same time, as separate processes: on a shared machine
they then see the same load, which makes their seconds comparable.
    python bench/moe.py --quick    # a few steps per arm: checks that everything works

Arms (kata 12's loop, the same data order, token budget and schedule for each):
  dense    kata 16's modern model at the GPT-2 baseline's parameter count (ablate's `modern`)
  moe      the same with each SwiGLU replaced by 8 experts of half its width, top-2, the
           Switch auxiliary loss (alpha 0.01) and the z-loss (0.001): the active parameters
           (what a token's FLOPs count) match dense, the total is about 4x the MLP's
  moe-bias the same MoE balanced by DeepSeek-V3's bias (gamma 0.001) instead of the aux loss
Per arm: active and total parameters, best val, the val curve against steps and against
training seconds, tokens/s, and the expert load at the end (busiest expert / uniform share).
Results: bench/results/moe.{json,md,png}.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import experiments as ex
import torch
from modern import ModernConfig, ModernGPT, modern_like
from moe import MoEGPT, describe, moe_like

ARMS = ("dense", "moe", "moe-bias")


def settings(device: str, quick: bool) -> dict:
    if quick:
        return dict(
            size=dict(n_layer=1, n_head=2, n_embd=32, block_size=32),
            batch=4,
            steps=4,
            eval_interval=2,
            eval_iters=2,
            seeds=[1],
            lr=3e-3,
            n_expert=4,
            top_k=2,
        )
    if device == "cpu":  # the cpu preset's model (configs/cpu.json), as in make ablate
        return dict(
            size=dict(n_layer=4, n_head=4, n_embd=128, block_size=64),
            batch=12,
            steps=150,
            eval_interval=25,
            eval_iters=10,
            seeds=[1],
            lr=3e-3,
            n_expert=8,
            top_k=2,
        )
    return dict(
        size=dict(n_layer=6, n_head=6, n_embd=384, block_size=256),
        batch=64,
        steps=2500,
        eval_interval=250,
        eval_iters=20,
        seeds=[1],
        lr=1e-3,
        n_expert=8,
        top_k=2,
    )


def arms(s: dict, vocab: int) -> dict[str, ModernConfig]:
    dense = modern_like(ModernConfig.gpt2(vocab_size=vocab, **s["size"]))
    moe = moe_like(dense, n_expert=s["n_expert"], top_k=s["top_k"])
    return {"dense": dense, "moe": moe, "moe-bias": dataclasses.replace(moe, balance="bias")}


def params(model: ModernGPT) -> tuple[int, int]:
    total = model.num_params()
    return (model.active_params() if isinstance(model, MoEGPT) else total), total


def compare(s: dict, data, device: str, out: Path) -> dict:
    results = {}
    for arm, config in arms(s, data[0].vocab_size).items():
        if arm not in s.get("arms", (arm,)):
            continue
        runs, loads = [], []
        for seed in s["seeds"]:
            torch.manual_seed(seed)
            model = ex.modern_model(config)
            cfg = ex.run_config(s, s["lr"], seed, out / f"{arm}-seed{seed}")
            runs.append(ex.run(model, cfg, data, device, target=1.88))
            if isinstance(model, MoEGPT):  # the last forward: an evaluation batch
                loads.append(model.expert_loads().tolist())
        active, total = params(ex.modern_model(config))
        best, spread = ex.mean_and_spread([r["best_val"] for r in runs])
        busiest = (max(max(layer) for layer in loads[0]) * config.n_expert) if loads else None
        results[arm] = {
            "describe": describe(config),
            "active_params": active,
            "total_params": total,
            "best_val_mean": round(best, 4),
            "best_val_std": round(spread, 4),
            "tokens_per_s": round(sum(r["tokens_per_s"] for r in runs) / len(runs)),
            "train_s": round(sum(r["train_s"] for r in runs) / len(runs), 1),
            "busiest_expert_vs_uniform": round(busiest, 2) if busiest else None,
            "final_load": loads[0] if loads else None,
            "runs": runs,
        }
        print(
            f"{arm:>8}: {active:,} active / {total:,} total, best val {best:.4f}, "
            f"{results[arm]['tokens_per_s']:,} tok/s, {results[arm]['train_s']} s"
            + (f", busiest expert {busiest:.2f}x uniform" if busiest else ""),
            flush=True,
        )
    return results


def val_at(run: dict, key: str, limit: float) -> float:
    """The best val the run had reached by `limit` steps or seconds."""
    seen = [p["val"] for p in run["curve"] if p[key] <= limit]
    return min(seen) if seen else float("nan")


def table(results: dict) -> str:
    s, m, arms_ = results["settings"], results["machine"], results["arms"]
    dense_s = arms_["dense"]["runs"][0]["train_s"] if "dense" in arms_ else math.inf
    lines = [
        f"# bench/moe.py ({m['device']}, {m['cpus']} cores shared with other jobs, load "
        f"average {m['load_average']}, {m['date']})",
        "",
        f"Model {s['size']}, {s['steps']} steps of {s['batch']} sequences, lr {s['lr']} "
        f"warmup-cosine, seeds {s['seeds']}; MoE: {s['n_expert']} experts, top-"
        f"{s['top_k']}. Seconds are training seconds on a machine shared with other jobs: "
        "compare them within this table only.",
        "",
        "| arm | active params | total params | best val | val at half the steps "
        f"| val after {dense_s:.0f} s (dense's whole run) | tokens/s | busiest expert "
        "/ uniform |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arm, r in arms_.items():
        run = r["runs"][0]
        busiest = f"{r['busiest_expert_vs_uniform']:.2f}" if r["busiest_expert_vs_uniform"] else "—"
        lines.append(
            f"| {arm} ({r['describe']}) | {r['active_params']:,} | "
            f"{r['total_params']:,} | {r['best_val_mean']:.4f} | "
            f"{val_at(run, 'step', s['steps'] // 2):.4f} | "
            f"{val_at(run, 'train_s', dense_s):.4f} | {r['tokens_per_s']:,} | "
            f"{busiest} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for arm, r in results["arms"].items():
        run = r["runs"][0]
        label = f"{arm} ({r['active_params'] / 1e3:.0f}k active / {r['total_params'] / 1e3:.0f}k)"
        by_step.plot(
            [p["step"] for p in run["curve"]],
            [p["val"] for p in run["curve"]],
            "o-",
            markersize=3,
            label=label,
        )
        by_time.plot(
            [p["train_s"] for p in run["curve"]],
            [p["val"] for p in run["curve"]],
            "o-",
            markersize=3,
            label=label,
        )
    by_step.set_xlabel("step")
    by_time.set_xlabel("training seconds (a shared CPU)")
    by_step.set_ylabel("val loss (nats per character)")
    for ax in (by_step, by_time):
        ax.set_ylim(top=min(2.6, ax.get_ylim()[1]))
        ax.grid(alpha=0.3)
    by_step.legend()
    fig.suptitle("MoE vs dense at equal active parameters: per step (left), per second (right)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = ex.parser("moe", __doc__)
    p.add_argument("--steps", type=int, help="training steps per run (default: the size's)")
    p.add_argument("--seeds", type=int, help="seeds per arm (default 1)")
    p.add_argument("--arms", nargs="+", choices=ARMS, help="which arms to run (default all)")
    p.add_argument("--part", action="store_true", help="write moe-part-<arms>.json only")
    p.add_argument("--merge", nargs="+", help="combine these part files into moe.*")
    args = p.parse_args(argv)
    device, out, results_dir = ex.start(p, args)
    s = settings(device, args.quick)
    for name, value in (("seeds", args.seeds), ("steps", args.steps)):
        if value is not None and value < 1:
            p.error(f"--{name} must be at least 1, got {value}")
    if args.seeds:
        s["seeds"] = list(range(1, args.seeds + 1))
    if args.steps:
        s["steps"] = args.steps
    started = time.perf_counter()
    if args.merge:
        parts = [json.loads(Path(path).read_text()) for path in args.merge]
        results = {**parts[0], "arms": {}, "machines": [part["machine"] for part in parts]}
        found = {a: r for part in parts for a, r in part["arms"].items()}
        results["arms"] = {arm: found[arm] for arm in ARMS if arm in found}
        ex.finish("moe", results, started, results_dir, table, plot)
        return 0
    results = {"machine": ex.machine(device), "settings": s}
    s["arms"] = [arm for arm in ARMS if arm in (args.arms or ARMS)]
    results["arms"] = compare(s, ex.shakespeare(), device, out)
    if args.part:
        ex.write_json(results_dir / f"moe-part-{'-'.join(s['arms'])}.json", results)
        return 0
    ex.finish("moe", results, started, results_dir, table, plot)
    return 0


if __name__ == "__main__":
    sys.exit(ex.harness.run_program(main))
