"""`python bench/muon.py`: AdamW against Muon (kata 18) on tiny Shakespeare, each at the best
learning rate of a small sweep.

    python bench/muon.py            # CPU: 3 learning rates x 2 optimizers (~20 min on 2 cores)
    python bench/muon.py --quick    # a few steps per run: checks that everything works
    python bench/muon.py --extend --lrs 0.024   # one more learning rate, kept with the others
    python bench/muon.py --extend               # no new runs: time the steps again

The same model (kata 09's GPT, smaller than the cpu preset: 2 layers, 4 heads, 64 dims,
block 64, batch 12), the same data order, steps, warmup-cosine schedule and clipping, through
kata 12's loop; only TrainConfig.optimizer differs: "adamw" (kata 10's groups) or "muon"
(kata 18's muon_with_adamw: Muon on the 8 hidden matrices with Moonshot's shape scale, AdamW
on the embeddings, gains and biases, all at one learning rate). Each optimizer is swept over the
same learning rates; the best (lowest best val) of each is compared: the steps and training
seconds each needed to reach the val loss the tuned AdamW run ends at, and the cost of one
step of each, timed in alternation so that both see the same load on a shared machine.
Results: bench/results/muon.{json,md,png}.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import experiments as ex
import torch
from gpt import GPT, GPTConfig

OPTIMIZERS = ("adamw", "muon")


def settings(quick: bool) -> dict:
    if quick:
        return dict(
            size=dict(n_layer=1, n_head=2, n_embd=32, block_size=32),
            batch=4,
            steps=6,
            eval_interval=2,
            eval_iters=2,
            seed=1,
            lrs=[3e-3, 6e-3],
        )
    # Smaller than the cpu preset (2 layers of 64 dims, not 4 of 128): 8 times fewer FLOPs
    # per step, so that the sweep fits on a busy machine.
    return dict(
        size=dict(n_layer=2, n_head=4, n_embd=64, block_size=64),
        batch=12,
        steps=500,
        eval_interval=25,
        eval_iters=8,
        seed=1,
        lrs=[3e-3, 6e-3, 1.2e-2],
    )


def sweep(s: dict, data, device: str, out: Path, runs: dict | None = None) -> dict:
    """One run per optimizer and learning rate in s["lrs"], added to `runs` (kept: earlier
    runs of the same settings, --extend)."""
    vocab = data[0].vocab_size
    runs = runs or {name: {} for name in OPTIMIZERS}
    for lr in s["lrs"]:
        for name in OPTIMIZERS:
            torch.manual_seed(s["seed"])  # the same initial weights for every run
            model = GPT(GPTConfig(vocab_size=vocab, dropout=0.0, **s["size"]))
            cfg = ex.run_config(s, lr, s["seed"], out / f"{name}-lr{lr:g}", optimizer=name)
            run = ex.run(model, cfg, data, device)
            runs[name][f"{lr:g}"] = run
            print(
                f"{name:>5} lr {lr:<7g} best val {run['best_val']:.4f} at step "
                f"{run['best_step']}, {run['tokens_per_s']:,} tok/s, {run['train_s']:.0f} s",
                flush=True,
            )
    return runs


def step_seconds(s: dict, data, device: str, rounds: int = 7, steps: int = 10) -> dict:
    """Seconds per training step (forward, backward, clipping, update) of each optimizer,
    measured in alternation, so that both see the same load on a shared machine: the median
    over `rounds` rounds of `steps` steps each."""
    from schedules import clip_grad_norm
    from shakespeare import get_batch, make_optimizer

    tokenizer, train_ids, _ = data
    setups = {}
    for name in OPTIMIZERS:
        torch.manual_seed(s["seed"])
        model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, dropout=0.0, **s["size"]))
        cfg = ex.TrainConfig(lr=s["lrs"][0], optimizer=name)
        setups[name] = (model, make_optimizer(model, cfg, device))
    batches = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {name: [] for name in OPTIMIZERS}
    for _ in range(rounds):
        for name, (model, optimizer) in setups.items():
            started = time.perf_counter()
            for _ in range(steps):
                x, y = get_batch(train_ids, s["batch"], s["size"]["block_size"], batches, device)
                _, loss = model(x, y)
                loss.backward()
                clip_grad_norm(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            times[name].append((time.perf_counter() - started) / steps)
    return {name: round(statistics.median(t), 5) for name, t in times.items()}


def first_reaching(run: dict, target: float) -> dict | None:
    return next((p for p in run["curve"] if p["val"] <= target), None)


def compare(runs: dict, per_step: dict) -> dict:
    """The best learning rate of each optimizer, and how fast each reached the val loss that
    tuned AdamW ends at: in steps, in the runs' own training seconds, and in steps times the
    seconds per step measured in alternation (per_step)."""
    best = {name: min(by_lr, key=lambda lr: by_lr[lr]["best_val"]) for name, by_lr in runs.items()}
    target = runs["adamw"][best["adamw"]]["best_val"]
    reach = {name: first_reaching(runs[name][best[name]], target) for name in OPTIMIZERS}
    summary = {
        "best_lr": best,
        "target_val": target,
        "best_val": {name: runs[name][best[name]]["best_val"] for name in OPTIMIZERS},
        "tokens_per_s": {name: runs[name][best[name]]["tokens_per_s"] for name in OPTIMIZERS},
        "step_seconds": per_step,
        "to_target": {
            name: (
                {
                    "step": p["step"],
                    "train_s": p["train_s"],
                    "paced_s": round(p["step"] * per_step[name], 1),
                }
                if p
                else None
            )
            for name, p in reach.items()
        },
    }
    if reach["muon"] and reach["adamw"]:
        a, m = summary["to_target"]["adamw"], summary["to_target"]["muon"]
        summary["speedup_steps"] = round(a["step"] / m["step"], 2)
        summary["speedup_seconds"] = round(a["train_s"] / m["train_s"], 2)
        summary["speedup_paced_seconds"] = round(a["paced_s"] / m["paced_s"], 2)
    return summary


def table(results: dict) -> str:
    s, m, c = results["settings"], results["machine"], results["compare"]
    lines = [
        f"# AdamW against Muon ({m['device']}, {m['cpus']} cores shared with other work, "
        f"load average {m['load_average'][0]}, {m['date']})",
        "",
        f"kata 09's GPT {s['size']}, {s['steps']} steps of {s['batch']} sequences, "
        f"warmup-cosine to lr/10, seed {s['seed']}, one run per learning rate. Seconds "
        "are training seconds (evaluations left out) on a machine shared with other "
        "jobs: compare them within this table only.",
        "",
        "| optimizer | lr | best val | at step | tokens/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, by_lr in results["runs"].items():
        for lr, run in sorted(by_lr.items(), key=lambda item: float(item[0])):
            mark = " **(best)**" if lr == c["best_lr"][name] else ""
            lines.append(
                f"| {name} | {lr}{mark} | {run['best_val']:.4f} | {run['best_step']} | "
                f"{run['tokens_per_s']:,} |"
            )
    per_step = c["step_seconds"]
    lines += [
        "",
        f"Target: tuned AdamW's best val, {c['target_val']:.4f}. Seconds per step, "
        f"measured with the two optimizers in alternation (the same load for both): "
        f"AdamW {per_step['adamw'] * 1e3:.1f} ms, Muon {per_step['muon'] * 1e3:.1f} ms "
        f"({per_step['muon'] / per_step['adamw']:.2f}x).",
        "",
        "| optimizer (best lr) | steps to target | steps x s/step | the run's own "
        "training s | best val |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in OPTIMIZERS:
        reach = c["to_target"][name]
        where = (
            f"{reach['step']} | {reach['paced_s']:.0f} | {reach['train_s']:.0f}"
            if reach
            else "not reached | — | —"
        )
        lines.append(f"| {name} ({c['best_lr'][name]}) | {where} | {c['best_val'][name]:.4f} |")
    if "speedup_steps" in c:
        lines += [
            "",
            f"Muon reaches it in {1 / c['speedup_steps']:.0%} of AdamW's steps "
            f"(a {c['speedup_steps']}x speed-up in steps) and, at the "
            f"alternating per-step cost, {1 / c['speedup_paced_seconds']:.0%} of its "
            f"time ({c['speedup_paced_seconds']}x); by the runs' own clocks, taken at "
            f"different loads, {c['speedup_seconds']}x.",
        ]
    return "\n".join(lines) + "\n"


def plot(results: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = results["compare"]
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for name, by_lr in results["runs"].items():
        for lr, run in by_lr.items():
            best = lr == c["best_lr"][name]
            color = "tab:blue" if name == "adamw" else "tab:red"
            style = dict(
                color=color,
                alpha=1.0 if best else 0.3,
                linewidth=2 if best else 1,
                label=f"{name} lr {lr}" if best else None,
            )
            by_step.plot(
                [p["step"] for p in run["curve"]], [p["val"] for p in run["curve"]], **style
            )
            if best:
                by_time.plot(
                    [p["train_s"] for p in run["curve"]], [p["val"] for p in run["curve"]], **style
                )
    for ax in (by_step, by_time):
        ax.axhline(c["target_val"], color="gray", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    by_step.set_xlabel("step")
    by_time.set_xlabel("training seconds (shared machine)")
    by_step.set_ylabel("val loss (nats per character)")
    by_step.set_ylim(top=min(3.0, by_step.get_ylim()[1]))
    by_step.set_title("every learning rate (faint) and the best")
    by_time.set_title("the best of each, against time")
    by_step.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = ex.parser("muon", __doc__)
    p.add_argument("--lrs", type=float, nargs="+", help="the learning rates to sweep")
    p.add_argument(
        "--extend",
        action="store_true",
        help="keep the runs in the results file "
        "(same settings) and add these learning rates to the sweep",
    )
    args = p.parse_args(argv)
    device, out, results_dir = ex.start(p, args)
    s = settings(args.quick)
    if args.lrs:
        s["lrs"] = args.lrs
    runs = None
    if args.extend:
        saved = json.loads((results_dir / "muon.json").read_text())
        kept = {k: v for k, v in saved["settings"].items() if k != "lrs"}
        if kept != {k: v for k, v in s.items() if k != "lrs"}:
            p.error(f"--extend: {results_dir / 'muon.json'} was made with other settings")
        runs = saved["runs"]
        s["lrs"] = sorted(set(saved["settings"]["lrs"]) | set(s["lrs"]))
    started = time.perf_counter()
    results = {"machine": ex.machine(device), "settings": s}
    todo = dict(s, lrs=[lr for lr in s["lrs"] if runs is None or f"{lr:g}" not in runs["adamw"]])
    data = ex.shakespeare()
    results["runs"] = sweep(todo, data, device, out, runs)
    results["compare"] = compare(results["runs"], step_seconds(s, data, device))
    ex.finish("muon", results, started, results_dir, table, plot)
    return 0


if __name__ == "__main__":
    sys.exit(ex.harness.run_program(main))
