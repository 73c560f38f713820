"""`make speedrun`: train until the val loss reaches a target, and say how long it took.

    python scripts/speedrun.py                  # configs/speedrun.json to val <= 1.88 (CPU)
    python scripts/speedrun.py --device cuda --compile   # preset medium to val <= 1.47
    python scripts/speedrun.py --optim muon --arch gpt2      # try another recipe

The same run as scripts/train.py (its functions: the preset, the data, the model, the run
directory, metrics.csv and loss.png, and run_training, with Ctrl-C as a clean stop), which
stops cleanly at the first evaluation whose val loss is <= --target-val (default: 1.88, what
nanoGPT's README reports for its CPU setting, on a CPU; 1.47, its published GPU result,
elsewhere). The clock starts when this program starts (imports, data and model included) and
stops at that evaluation; the last line says when that was, or that the run ended without
reaching it. Writes runs/speedrun (or --out), replacing the run there.
bench/speedrun_vs_nanogpt.py times it against nanoGPT's own train.py on the same machine.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the imports: torch's import is part of the run

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402

import models  # noqa: E402
import processes  # noqa: E402  (scripts/processes.py: the device)
import run_data  # noqa: E402  (scripts/run_data.py: the text and its tokenizer)
import torch  # noqa: E402
import train as trainer  # noqa: E402  (scripts/train.py: its seams, and harness.use)
from guards import on_disk_errors, refuse, validate_settings  # noqa: E402
from run_log import RunLog  # noqa: E402
from run_settings import load_preset  # noqa: E402

import harness  # noqa: E402


def parse_args(argv=None) -> tuple[argparse.Namespace, argparse.Namespace]:
    """(this program's own flags, the scripts/train.py flags they become)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--target-val",
        type=float,
        help="stop at the first evaluation with val "
        "loss <= this (default 1.88 on a CPU, 1.47 on a GPU)",
    )
    p.add_argument(
        "--preset",
        help="a file in configs/ (default: speedrun on a CPU, medium "
        "on a GPU, whose recipe is not measured yet)",
    )
    p.add_argument("--out", help="run directory (default runs/speedrun)")
    p.add_argument(
        "--arch",
        choices=models.ARCHS,
        default="modern",
        help="modern (the default: RoPE and SwiGLU reach a val loss in far fewer steps) or gpt2",
    )
    own, rest = p.parse_known_args(argv)
    out = own.out or str(trainer.ROOT / "runs" / "speedrun")
    preset = ["--preset", own.preset] if own.preset else []
    args = trainer.parse_args([*preset, "--arch", own.arch, "--out", out, "--overwrite", *rest])
    return own, args


def main(argv=None) -> int:
    own, args = parse_args(argv)
    validate_settings(args)
    trainer.check_moe_flags(args)
    if own.target_val is not None and not 0 < own.target_val < math.inf:
        refuse(f"TARGET={own.target_val}: the target val loss is a positive number, e.g. 1.88")
    if args.nproc is not None:
        refuse("NPROC: the speedrun is one process; `make train NPROC=n` trains on several")
    runtime = processes.start_runtime(args)
    if runtime.distributed:
        refuse("the speedrun is one process; `make train NPROC=n` trains on several")
    cpu = torch.device(runtime.device).type == "cpu"
    target = own.target_val if own.target_val is not None else 1.88 if cpu else 1.47
    args.preset = args.preset or ("speedrun" if cpu else "medium")
    model_fields, train_fields = load_preset(args.preset)
    out_dir = Path(args.out)
    cfg, _ = trainer.settle_run(
        args, out_dir, train_fields, model_fields, f"configs/{args.preset}.json", runtime
    )
    tokenizer, train_ids, val_ids = run_data.shakespeare_data(args, out_dir)
    model_fields["vocab_size"] = tokenizer.vocab_size
    model_fields = models.model_fields(args.arch, model_fields, args.mlp, args.n_expert, args.top_k)
    model = trainer.new_model(model_fields, cfg.seed)
    trainer.write_run_config(
        out_dir,
        {"preset": args.preset, "model": model_fields, "train": asdict(cfg), "target_val": target},
    )
    print(
        trainer.describe_run(
            f"speedrun (preset {args.preset}, target val <= {target})",
            runtime,
            model,
            model_fields,
            tokenizer.vocab_size,
            cfg,
            out_dir,
        ),
        flush=True,
    )

    reached = {}

    def at_target(event: dict) -> bool:
        """The first evaluation at or below the target (its step, val loss and time) ends it."""
        if not reached and event["val_loss"] <= target:
            reached.update(
                step=event["step"], val=event["val_loss"], seconds=time.perf_counter() - STARTED
            )
        return bool(reached)

    result, code = trainer.run_training(
        model,
        tokenizer,
        train_ids,
        val_ids,
        cfg,
        runtime,
        False,
        RunLog(out_dir, cfg),
        on_eval=at_target,
    )
    if result is None:  # diverged, said in one line
        return code
    if reached:
        print(
            f"speedrun: val {reached['val']:.4f} <= {target} at step {reached['step']}, "
            f"{reached['seconds']:.1f} s after the start ({out_dir / 'metrics.csv'})"
        )
        return 0
    print(
        f"speedrun: the target val <= {target} was not reached in {result['step']} steps "
        f"(best val {result['best_val']:.4f} at step {result['best_step']}), "
        f"{time.perf_counter() - STARTED:.1f} s"
    )
    return code or 1  # 130 after Ctrl-C


if __name__ == "__main__":
    sys.exit(harness.run_program(on_disk_errors(main)))
