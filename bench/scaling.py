"""`make scaling`: feel the scaling laws on one machine.

    python bench/scaling.py            # CPU: 5 sizes x 1 budget, then 5 data fractions (~15 min)
    python bench/scaling.py --quick    # a few steps per run: checks that everything works

Two ladders of kata 09's GPT on tiny Shakespeare, trained with kata 12's loop:
  - models: 5 or more sizes (on a CPU about 30x apart in non-embedding parameters N), each
    trained on the same number of tokens; the best val loss against N is fitted with
    L(N) = E + A * N^(-alpha) (bench/fit.py) and drawn on log-log axes;
  - data: one model trained on a growing fraction of the training text for the same number
    of steps; with little text it memorises and its val loss rises; the same law in D.
It also times a few steps of the three presets (tiny, small, medium) on this machine, for the
time their full runs would take. Results: bench/results/scaling.{json,md,png}.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import experiments as ex
import torch
from fit import fit_power_law
from gpt import GPT, PRESETS, GPTConfig

# (n_layer, n_head, n_embd): N = 12 * n_layer * n_embd^2 (+ the norms' gains).
CPU_SIZES = [(1, 2, 48), (2, 2, 64), (2, 4, 96), (3, 4, 128), (4, 4, 160)]
GPU_SIZES = [(2, 2, 128), (4, 4, 256), (6, 6, 384), (8, 8, 512), (12, 12, 768)]
FRACTIONS = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
QUOTED_MINUTES = {"tiny": 5, "small": 20, "medium": 45}  # the lesson pages, "on a laptop"


def settings(device: str, quick: bool) -> dict:
    if quick:
        return dict(
            sizes=CPU_SIZES[:3],
            fractions=FRACTIONS[:3],
            data_model=CPU_SIZES[1],
            block=32,
            batch=4,
            steps=6,
            eval_interval=3,
            eval_iters=2,
            presets=(),
        )
    if device == "cpu":
        return dict(
            sizes=CPU_SIZES,
            fractions=FRACTIONS,
            data_model=CPU_SIZES[3],
            block=64,
            batch=16,
            steps=1200,
            eval_interval=200,
            eval_iters=10,
            presets=("tiny", "small", "medium"),
            time_steps=2,
        )
    return dict(
        sizes=GPU_SIZES,
        fractions=FRACTIONS,
        data_model=GPU_SIZES[2],
        block=256,
        batch=64,
        steps=2500,
        eval_interval=250,
        eval_iters=20,
        presets=("tiny", "small", "medium"),
        time_steps=20,
    )


def train_config(s: dict, name: str, out: Path) -> ex.TrainConfig:
    return ex.run_config(s, 2e-3, 1337, out / name)


def model_ladder(s: dict, data, device: str, out: Path) -> list[dict]:
    rows = []
    for n_layer, n_head, n_embd in s["sizes"]:
        torch.manual_seed(1337)
        config = GPTConfig(
            vocab_size=data[0].vocab_size,
            block_size=s["block"],
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
        )
        model = GPT(config)
        name = f"{n_layer}L-{n_embd}d"
        result = ex.run(model, train_config(s, f"model-{name}", out), data, device)
        rows.append(
            {
                "name": name,
                "n_layer": n_layer,
                "n_head": n_head,
                "n_embd": n_embd,
                "N": ex.non_embedding_params(model),
                **result,
            }
        )
        print(
            f"model {name:>8}: N {rows[-1]['N']:>9,}  best val {result['best_val']:.4f}  "
            f"[{result['wall_s']:.0f}s, {result['tokens_per_s']:,} tok/s]",
            flush=True,
        )
    return rows


def data_ladder(s: dict, data, device: str, out: Path) -> list[dict]:
    tokenizer, train_ids, val_ids = data
    n_layer, n_head, n_embd = s["data_model"]
    rows = []
    for fraction in s["fractions"]:
        torch.manual_seed(1337)
        config = GPTConfig(
            vocab_size=tokenizer.vocab_size,
            block_size=s["block"],
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
        )
        part = train_ids[: max(int(len(train_ids) * fraction), s["block"] + 2)]
        result = ex.run(
            GPT(config),
            train_config(s, f"data-{fraction:.4f}", out),
            (tokenizer, part, val_ids),
            device,
        )
        rows.append({"fraction": fraction, "D": len(part), **result})
        print(
            f"data {fraction:>7.4f}: D {len(part):>9,} chars  best val "
            f"{result['best_val']:.4f}  [{result['wall_s']:.0f}s]",
            flush=True,
        )
    return rows


def preset_timings(s: dict, data, device: str) -> list[dict]:
    """Seconds per step of the three presets at their own batch size, and what their
    configs' full max_steps would take here (evaluations left out)."""
    import json

    rows = []
    tokenizer, train_ids, _ = data
    for name in s["presets"]:
        train_cfg = json.loads((ex.ROOT / "configs" / f"{name}.json").read_text())["train"]
        config = dataclasses.replace(PRESETS[name], vocab_size=tokenizer.vocab_size)
        model = GPT(config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = train_cfg["batch_size"]
        x = train_ids[: batch * config.block_size].view(batch, -1).to(device)
        seconds = []
        for _ in range(s["time_steps"] + 1):  # the first step warms up, untimed
            started = time.perf_counter()
            _, loss = model(x, x)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if device == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - started)
        per_step = sum(seconds[1:]) / len(seconds[1:])
        rows.append(
            {
                "preset": name,
                "params": model.num_params(),
                "batch": batch,
                "max_steps": train_cfg["max_steps"],
                "s_per_step": round(per_step, 4),
                "full_run_min": round(per_step * train_cfg["max_steps"] / 60, 1),
                "quoted_min": QUOTED_MINUTES[name],
            }
        )
        print(
            f"preset {name:>6}: {per_step:.3f} s/step -> {rows[-1]['full_run_min']} min for "
            f"{train_cfg['max_steps']} steps (the lesson pages: ~{QUOTED_MINUTES[name]} min)",
            flush=True,
        )
    return rows


def fitted(rows: list[dict], key: str) -> dict | None:
    try:
        law = fit_power_law([r[key] for r in rows], [r["best_val"] for r in rows])
    except (ValueError, RuntimeError) as err:  # too few points, or no convergence
        print(f"no fit for {key}: {err}", file=sys.stderr)
        return None
    return {
        "E": round(law.E, 4),
        "A": round(law.A, 4),
        "alpha": round(law.alpha, 4),
        "formula": str(law),
    }


def plot(results: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from fit import PowerLaw
    from matplotlib.ticker import StrMethodFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, rows, fit, label in (
        (axes[0], "N", results["models"], results["fit_N"], "non-embedding parameters N"),
        (axes[1], "D", results["data"], results["fit_D"], "training characters D"),
    ):
        x = np.array([r[key] for r in rows], dtype=float)
        ax.loglog(x, [r["best_val"] for r in rows], "o", color="tab:blue", label="measured")
        if fit:
            law = PowerLaw(fit["E"], fit["A"], fit["alpha"])
            xs = np.geomspace(x.min() / 1.5, x.max() * 1.5, 100)
            ax.loglog(
                xs,
                law(xs),
                "-",
                color="tab:orange",
                label=f"E + A·x^-α: α = {fit['alpha']:.2f}, E = {fit['E']:.2f}",
            )
        ax.set_xlabel(label)
        ax.set_ylabel("best val loss (nats per character)")
        # Losses span less than a factor of 2: plain decimals, not overlapping 2x10^0 labels.
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:.2f}"))
        ax.yaxis.set_minor_formatter(StrMethodFormatter("{x:.2f}"))
        ax.legend()
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title(f"model size, {results['settings']['steps']} steps each")
    axes[1].set_title(f"data, one model ({results['data_model']})")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def table(results: dict) -> str:
    s = results["settings"]
    lines = [
        f"# make scaling ({results['machine']['device']}, {results['machine']['cpus']} "
        f"cores, {results['machine']['date']})",
        "",
        f"Each model: {s['steps']} steps of {s['batch']} x {s['block']} tokens "
        f"({s['steps'] * s['batch'] * s['block']:,} tokens), lr 2e-3 warmup-cosine.",
        "",
        "| model | N (non-embedding) | best val | tokens/s | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['name']} | {r['N']:,} | {r['best_val']:.4f} | {r['tokens_per_s']:,} | "
        f"{r['wall_s']:.0f} |"
        for r in results["models"]
    ]
    if results["fit_N"]:
        lines += ["", f"Fit over N: {results['fit_N']['formula']}"]
    lines += [
        "",
        f"Data ladder, model {results['data_model']}:",
        "",
        "| fraction | D (characters) | best val |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {r['fraction']:.4f} | {r['D']:,} | {r['best_val']:.4f} |" for r in results["data"]
    ]
    if results["fit_D"]:
        lines += ["", f"Fit over D: {results['fit_D']['formula']}"]
    if not results["presets"]:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "Presets: one step timed here, times their configs' max_steps (no evals):",
        "",
        "| preset | parameters | s/step | full run here | the lesson pages (laptop) |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['preset']} | {r['params']:,} | {r['s_per_step']} | {r['full_run_min']} min "
        f"({r['max_steps']} steps) | ~{r['quoted_min']} min |"
        for r in results["presets"]
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = ex.parser("scaling", __doc__)
    args = p.parse_args(argv)
    device, out, results_dir = ex.start(p, args)
    s = settings(device, args.quick)
    data = ex.shakespeare()
    started = time.perf_counter()
    results = {
        "machine": ex.machine(device),
        "settings": s,
        "data_model": "{}L-{}d".format(s["data_model"][0], s["data_model"][2]),
    }
    results["models"] = model_ladder(s, data, device, out)
    results["fit_N"] = fitted(results["models"], "N")
    results["data"] = data_ladder(s, data, device, out)
    results["fit_D"] = fitted(results["data"], "D")
    results["presets"] = preset_timings(s, data, device)
    ex.finish("scaling", results, started, results_dir, table, plot)
    return 0


if __name__ == "__main__":
    sys.exit(ex.harness.run_program(main))
