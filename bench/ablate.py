"""`make ablate`: what each 2026 part buys over its GPT-2 predecessor, on tiny Shakespeare.

    python bench/ablate.py             # CPU: 9 arms x 3 seeds of the cpu preset's size (~1 h)
    python bench/ablate.py --quick     # a few steps per arm: checks that everything works

Every arm is kata 16's ModernGPT trained with kata 12's loop on the same data order, token
budget and learning-rate schedule, at the parameter count of the GPT-2 baseline (within 2%:
where a part changes the count by more than 1%, the MLP's hidden width is chosen to make it
up; kata 09's GELU MLP is always 4 * n_embd wide, so for it the experiment swaps in wider
c_fc and c_proj layers):
  gpt2     LayerNorm, learned positions, GELU MLP, multi-head attention (kata 09's model)
  rmsnorm  ... with RMSNorm                     (kata 13)
  rope     ... with rotary positions, no wpe    (kata 13)
  swiglu   ... with the gated SwiGLU MLP        (kata 14)
  gqa      ... with n_head / 2 key-value heads  (kata 15)
  window   ... with sliding-window attention    (kata 15)
  modern   RMSNorm + RoPE + SwiGLU + GQA together
  muon     modern, trained with kata 18's Muon (AdamW for embeddings and gains), same lr
  moe      modern, each SwiGLU split into 8 experts, top-2 (kata 19): the same ACTIVE
           parameters, about 3x the total (the table gives both)
Per arm: best val loss (mean and spread over seeds), training seconds until val <= 1.88
(nanoGPT's CPU result), tokens/s, KV-cache bytes per token (measured on kata 15's cache).
Results: bench/results/ablate.{json,md,png}.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import experiments as ex
import torch
from gqa import StaticKVCache
from modern import ModernConfig, ModernGPT
from moe import MoEGPT, moe_like

SWITCHES = ("norm", "positions", "mlp", "mlp_hidden", "n_kv_head", "window")


def arms(n_head: int, block: int) -> dict[str, dict]:
    return {
        "gpt2": {},
        "rmsnorm": {"norm": "rmsnorm"},
        "rope": {"positions": "rope"},
        "swiglu": {"mlp": "swiglu"},
        "gqa": {"n_kv_head": n_head // 2},
        "window": {"window": block // 4},
        "modern": {
            "norm": "rmsnorm",
            "positions": "rope",
            "mlp": "swiglu",
            "n_kv_head": n_head // 2,
        },
        "muon": {
            "norm": "rmsnorm",
            "positions": "rope",
            "mlp": "swiglu",  # optimizer: Muon
            "n_kv_head": n_head // 2,
        },
        "moe": {
            "norm": "rmsnorm",
            "positions": "rope",
            "mlp": "swiglu",  # then experts
            "n_kv_head": n_head // 2,
        },
    }


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
        )
    if device == "cpu":  # the cpu preset's model (configs/cpu.json)
        return dict(
            size=dict(n_layer=4, n_head=4, n_embd=128, block_size=64),
            batch=12,
            steps=1200,
            eval_interval=100,
            eval_iters=10,
            seeds=[1, 2, 3],
            lr=3e-3,
        )
    return dict(
        size=dict(n_layer=6, n_head=6, n_embd=384, block_size=256),
        batch=64,
        steps=2500,
        eval_interval=250,
        eval_iters=20,
        seeds=[1, 2, 3],
        lr=1e-3,
    )


def build(config: ModernConfig, gelu_hidden: int | None = None) -> ModernGPT:
    """Kata 16's model; with gelu_hidden, its GELU MLPs are that wide instead of 4 * n_embd."""
    model = ex.modern_model(config)
    if gelu_hidden:
        for block in model.transformer.h:
            block.mlp.c_fc = torch.nn.Linear(config.n_embd, gelu_hidden, bias=config.bias)
            block.mlp.c_proj = torch.nn.Linear(gelu_hidden, config.n_embd, bias=config.bias)
        model._init_weights()  # kata 09's init, the new layers included
    return model


def count(config: ModernConfig, gelu_hidden: int | None = None) -> int:
    with torch.device("meta"):  # no memory, no initialisation: just the shapes
        return sum(p.numel() for p in build(config, gelu_hidden).parameters())


def matched(config: ModernConfig, target: int) -> tuple[ModernConfig, int | None]:
    """(config, GELU width or None): the MLP width that brings the parameter count closest to
    target, when the part the arm swaps in moved the count by more than 1%."""
    if abs(count(config) - target) <= 0.01 * target:
        return config, None
    widths = range(8, 8 * config.n_embd + 1, 8)
    if config.mlp == "swiglu":
        return min(
            (dataclasses.replace(config, mlp_hidden=h) for h in widths),
            key=lambda c: abs(count(c) - target),
        ), None
    return config, min(widths, key=lambda h: abs(count(config, h) - target))


def kv_bytes(config: ModernConfig) -> dict:
    """Bytes per token and at a full context, read off kata 15's cache for this config."""
    n_kv = config.n_kv_head or config.n_head
    cache = StaticKVCache(
        config.n_layer,
        1,
        n_kv,
        config.n_embd // config.n_head,
        config.block_size,
        window=config.window,
    )
    capacity = config.window or config.block_size
    return {"kv_bytes_per_token": cache.nbytes() // capacity, "kv_bytes_full": cache.nbytes()}


def ablate(s: dict, data, device: str, out: Path) -> dict:
    vocab = data[0].vocab_size
    base = ModernConfig.gpt2(vocab_size=vocab, **s["size"])
    target = count(base)
    results = {}
    for arm, change in arms(base.n_head, base.block_size).items():
        config, gelu_hidden = matched(dataclasses.replace(base, **change), target)
        if arm == "moe":  # the matched modern MLP split over 8 experts, 2 active per token
            config = moe_like(config, n_expert=8, top_k=2)
        runs = []
        for seed in s["seeds"]:
            torch.manual_seed(seed)
            optimizer = "muon" if arm == "muon" else "adamw"
            cfg = ex.run_config(s, s["lr"], seed, out / f"{arm}-seed{seed}", optimizer=optimizer)
            runs.append(ex.run(build(config, gelu_hidden), cfg, data, device, target=1.88))
        best, spread = ex.mean_and_spread([r["best_val"] for r in runs])
        reached = [r["seconds_to_target"] for r in runs if r["seconds_to_target"] is not None]
        results[arm] = {
            "config": {k: getattr(config, k) for k in SWITCHES} | {"gelu_hidden": gelu_hidden},
            "params": count(config, gelu_hidden),
            "best_val_mean": round(best, 4),
            **({"active_params": MoEGPT(config).active_params()} if arm == "moe" else {}),
            "best_val_std": round(spread, 4),
            "best_val_each": [r["best_val"] for r in runs],
            "seconds_to_target_mean": round(sum(reached) / len(reached), 1) if reached else None,
            "reached_target": f"{len(reached)}/{len(runs)}",
            "tokens_per_s": round(sum(r["tokens_per_s"] for r in runs) / len(runs)),
            **kv_bytes(config),
            "runs": runs,
        }
        print(
            f"{arm:>8}: {results[arm]['params']:,} params, best val {best:.4f} ± "
            f"{spread:.4f} over {len(runs)} seeds, {results[arm]['tokens_per_s']:,} tok/s, "
            f"KV {results[arm]['kv_bytes_per_token']:,} B/token",
            flush=True,
        )
    return results


def table(results: dict) -> str:
    s, m = results["settings"], results["machine"]
    arms_ = results["arms"]
    lines = [
        f"# make ablate ({m['device']}, {m['cpus']} cores, {m['date']})",
        "",
        f"Model {s['size']}, {s['steps']} steps of {s['batch']} sequences, lr {s['lr']} "
        f"warmup-cosine, seeds {s['seeds']}. Mean ± standard deviation over seeds.",
        "",
        "| arm | parameters | best val | Δ vs gpt2 | train s to val ≤ 1.88 | tokens/s "
        "| KV cache B/token | KV cache at full context |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = arms_["gpt2"]["best_val_mean"]
    for arm, r in arms_.items():
        to_target = (
            f"{r['seconds_to_target_mean']:.0f} ({r['reached_target']})"
            if r["seconds_to_target_mean"] is not None
            else f"— ({r['reached_target']})"
        )
        active = f" ({r['active_params']:,} active)" if "active_params" in r else ""
        lines.append(
            f"| {arm} | {r['params']:,}{active} | {r['best_val_mean']:.4f} ± "
            f"{r['best_val_std']:.4f} | {r['best_val_mean'] - base:+.4f} | {to_target} | "
            f"{r['tokens_per_s']:,} | {r['kv_bytes_per_token']:,} | "
            f"{r['kv_bytes_full']:,} |"
        )
    return "\n".join(lines) + "\n"


def y_limits(results: dict) -> tuple[float, float]:
    """The y-axis that holds every val loss after the first evaluation (the untrained one, near
    ln(vocab), would flatten the curves), with a margin: a full run's curves near 1.8 and a
    --quick run's near 3 both fill the plot."""
    vals = [
        p["val"]
        for r in results["arms"].values()
        for run in r["runs"]
        for p in (run["curve"][1:] or run["curve"])
    ]
    low, high = min(vals), max(vals)
    margin = max(0.05 * (high - low), 0.01)
    return low - margin, high + margin


def plot(results: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 5))
    for arm, r in results["arms"].items():
        steps = [p["tokens"] for p in r["runs"][0]["curve"]]
        vals = np.array([[p["val"] for p in run["curve"]] for run in r["runs"]])
        (line,) = ax.plot(
            steps,
            vals.mean(axis=0),
            label=f"{arm} ({r['best_val_mean']:.3f})",
            linewidth=2.2 if arm in ("gpt2", "modern") else 1.2,
        )
        ax.fill_between(
            steps, vals.min(axis=0), vals.max(axis=0), color=line.get_color(), alpha=0.15
        )
    ax.axhline(1.88, color="gray", linestyle=":", linewidth=1, label="1.88 (nanoGPT, CPU)")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("val loss (nats per character)")
    ax.set_ylim(*y_limits(results))
    ax.set_title("GPT-2 parts against their 2026 replacements (mean over seeds, band: min-max)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = ex.parser("ablate", __doc__)
    p.add_argument("--seeds", type=int, help="seeds per arm (default 3)")
    p.add_argument("--steps", type=int, help="training steps per run (default: the size's)")
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
    results = {"machine": ex.machine(device), "settings": s}
    results["arms"] = ablate(s, ex.shakespeare(), device, out)
    ex.finish("ablate", results, started, results_dir, table, plot)
    return 0


if __name__ == "__main__":
    sys.exit(ex.harness.run_program(main))
