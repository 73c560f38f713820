"""What `make ablate` and `make scaling` share: one training run through kata 12's `train`,
measured, and the files the experiments write.

A run is a model, a TrainConfig and a slice of tiny Shakespeare. It trains in this process
with the same loop as `make train` (warmup-cosine AdamW, clipping, evaluation on the same
batches of the validation split), and comes back as a dict: the val curve, the best val,
the tokens per second of the training steps and the training seconds until the val loss
first reached a target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import harness  # noqa: E402

harness.use(harness.program_impl())

import torch  # noqa: E402
from shakespeare import TrainConfig, pick_device, split_data, train  # noqa: E402
from tokenizer import CharTokenizer  # noqa: E402

from harness.data import fetch  # noqa: E402

RESULTS = harness.results_dir()  # bench/results/ only with RECORD=1


def shakespeare() -> tuple[CharTokenizer, torch.Tensor, torch.Tensor]:
    """The tokenizer and the conventional 90/10 split of tiny Shakespeare, as token ids."""
    text = fetch.require("tinyshakespeare.txt").read_text()
    tokenizer = CharTokenizer(text)
    train_ids, val_ids = split_data(text, tokenizer)
    return tokenizer, train_ids, val_ids


def modern_model(config) -> torch.nn.Module:
    """Kata 16's ModernGPT for a ModernConfig, or kata 19's MoEGPT when its mlp is "moe"."""
    from modern import ModernGPT
    from moe import MoEGPT

    return MoEGPT(config) if config.mlp == "moe" else ModernGPT(config)


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters outside the token and position tables (Kaplan et al.'s N)."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if not name.startswith(("transformer.wte", "transformer.wpe"))
    )


def run(
    model: torch.nn.Module, cfg: TrainConfig, data, device: str, target: float | None = None
) -> dict:
    """Train `model` with kata 12's loop and measure it. `data` is (tokenizer, train, val)."""
    tokenizer, train_ids, val_ids = data
    tokens_per_step = cfg.batch_size * model.config.block_size
    clock = {"train_s": 0.0}
    curve: list[dict] = []
    speeds: list[float] = []

    def log(event: dict) -> None:
        if event["kind"] == "step":  # the step's own time, evaluations left out
            speeds.append(event["tokens_per_s"])
            clock["train_s"] += tokens_per_step / event["tokens_per_s"]
        elif event["kind"] == "eval":
            curve.append(
                {
                    "step": event["step"],
                    "tokens": event["step"] * tokens_per_step,
                    "train_s": round(clock["train_s"], 2),
                    "val": round(event["val_loss"], 4),
                }
            )

    started = time.perf_counter()
    train(model, tokenizer, train_ids, val_ids, cfg, device, log=log)
    best = min(curve, key=lambda point: point["val"])
    reached = [p for p in curve if target is not None and p["val"] <= target]
    return {
        "best_val": best["val"],
        "best_step": best["step"],
        "tokens_per_s": round(statistics.median(speeds[10:] or speeds)),
        "seconds_to_target": reached[0]["train_s"] if reached else None,
        "train_s": round(clock["train_s"], 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "curve": curve,
    }


def parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The options every experiment takes; add your own, then call `start`."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--device", help="cuda, mps or cpu (default: the fastest there is)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: these "
        "models are small, and one thread is faster than two fighting over a busy "
        "machine)",
    )
    p.add_argument("--quick", action="store_true", help="a few steps per run (a smoke test)")
    p.add_argument(
        "--results",
        default=str(RESULTS),
        help=f"where {name}.{{json,md,png}} go (default {RESULTS.relative_to(ROOT)}; "
        "bench/results with RECORD=1)",
    )
    p.add_argument(
        "--runs", default=str(ROOT / "runs" / name), help="where the runs' checkpoints go"
    )
    return p


def start(p: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, Path, Path]:
    """(device, runs directory, results directory) for the parsed options."""
    if args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    runs, results = Path(args.runs), Path(args.results)
    if args.quick and results.resolve() == RESULTS.resolve():
        results = harness.results_dir(quick=True)  # a smoke test never replaces measured results
    return default_device(args.device), runs, results


def finish(name: str, results: dict, started: float, directory: Path, table, plot) -> None:
    """Write <name>.json, .md (table(results)) and .png (plot(results, path)); print the table."""
    results["total_s"] = round(time.perf_counter() - started)
    write_json(directory / f"{name}.json", results)
    write_atomically(directory / f"{name}.md", table(results))
    plot(results, directory / f"{name}.png")
    print(table(results))
    print(f"{results['total_s']} s in all; written to {directory}/{name}.{{json,md,png}}")


def run_config(s: dict, lr: float, seed: int, out_dir: Path, **more) -> TrainConfig:
    """One experiment run's TrainConfig: the settings' batch, steps and evaluations; warmup
    (a tenth of the run, at most 100 steps) and a cosine from lr to lr/10; no early stop."""
    return TrainConfig(
        batch_size=s["batch"],
        max_steps=s["steps"],
        lr=lr,
        min_lr=lr / 10,
        warmup_steps=min(100, s["steps"] // 10),
        eval_interval=s["eval_interval"],
        eval_iters=s["eval_iters"],
        patience=0,
        seed=seed,
        out_dir=str(out_dir),
        **more,
    )


def machine(device: str) -> dict:
    return {
        "device": device,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "impl": harness.program_impl(),
        "date": time.strftime("%Y-%m-%d"),
    }


def default_device(asked: str | None) -> str:
    return asked or pick_device()


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, results: dict) -> None:
    write_atomically(path, json.dumps(results, indent=1) + "\n")


def mean_and_spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
