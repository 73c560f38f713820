"""What scripts/train.py and scripts/sample.py check before they start: each problem is one
line that says what is wrong and what to do, and nothing is written before the checks pass.

- every setting given on the command line (validate_settings);
- the run directory: a new run never replaces another run's checkpoints unless --overwrite,
  a resumed run takes the settings of the run it continues, and stray temporary files from
  a killed save are removed (prepare_run_directory);
- a checkpoint that is empty, cut short, not a checkpoint, or would run code when loaded is
  named, never shown as a traceback (read_checkpoint);
- the data file is the published one, by sha256 (verified_data).

The scripts import this after harness.use(), so `shakespeare` is the chosen kata 12.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
import warnings
import zipfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import NoReturn

from shakespeare import load_checkpoint

from data import fetch

# The settings a user gives (flag: make variable, what it must be, its check).
SETTINGS = {
    "steps": ("STEPS", "a whole number of steps, 1 or more", lambda v: v >= 1),
    "batch": ("BATCH", "a whole number of sequences per step, 1 or more", lambda v: v >= 1),
    "lr": ("LR", "a learning rate above 0, such as 1e-3", lambda v: math.isfinite(v) and v > 0),
    "dropout": ("DROPOUT", "a probability in [0, 1), such as 0.2", lambda v: 0 <= v < 1),
    "eval_interval": ("EVAL_INTERVAL", "a whole number of steps, 1 or more", lambda v: v >= 1),
    "eval_iters": ("--eval-iters", "a whole number of batches, 1 or more", lambda v: v >= 1),
    "patience": ("PATIENCE", "0 (never stop early) or a whole number of evaluations",
                 lambda v: v >= 0),
    "threads": ("THREADS", "a whole number of threads, 1 or more", lambda v: v >= 1),
    "samples": ("--samples", "0 or more", lambda v: v >= 0),
}
# The TrainConfig fields set by flags (the others come from the preset), and those that say
# how to run rather than what to train (a resumed run takes them from this command line).
FLAG_FIELDS = {"steps": "max_steps", "batch": "batch_size", "lr": "lr",
               "eval_interval": "eval_interval", "eval_iters": "eval_iters",
               "patience": "patience", "seed": "seed"}
HOW_TO_RUN = ("out_dir", "compile", "parallel")


def refuse(message: str) -> NoReturn:
    """Stop before anything is written, with one line that says what is wrong and what to do."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a value of the wrong kind (STEPS=abc) reported in one line."""

    def error(self, message: str) -> NoReturn:
        refuse(f"{message} (--help lists every setting)")


def validate_settings(args: argparse.Namespace) -> None:
    """Refuse the first setting out of its range (SETTINGS), before anything runs."""
    for name, (variable, must_be, ok) in SETTINGS.items():
        value = getattr(args, name)
        if value is not None and not ok(value):
            refuse(f"{variable}={value} cannot be used: give {must_be}")


def given_settings(args: argparse.Namespace) -> str:
    """The settings given on this command line, as make variables (for a hint to repeat)."""
    names = ("steps", "batch", "lr", "dropout", "eval_interval", "patience")
    given = [f"{SETTINGS[n][0]}={getattr(args, n)}" for n in names if getattr(args, n) is not None]
    if args.seed is not None:
        given.append(f"SEED={args.seed}")
    return "".join(f" {setting}" for setting in given)


def read_checkpoint(path: Path, what_to_do: str) -> dict:
    """Kata 12's load_checkpoint, with a damaged file named in one line (never a traceback,
    never the advice to load it with weights_only=False, which could run code in it)."""
    try:
        with warnings.catch_warnings():  # torch's remarks on a foreign pickle: the line says it
            warnings.simplefilter("ignore")
            checkpoint = load_checkpoint(path)
    except (FileNotFoundError, NotImplementedError):
        raise
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as err:
        if path.stat().st_size == 0:
            why = "it is empty (0 bytes)"
        elif isinstance(err, pickle.UnpicklingError) and "global" in str(err).lower():
            why = ("it holds objects other than tensors and plain data, which are not loaded "
                   "because loading them could run code")
        else:
            why = "it is cut short or is not a checkpoint"
        refuse(f"{path} is damaged: {why}. {what_to_do}")
    if not isinstance(checkpoint, dict) or not {"model", "model_config"} <= set(checkpoint):
        refuse(f"{path} is damaged: it holds no model. {what_to_do}")
    return checkpoint


def remove_partial_checkpoints(out_dir: Path) -> None:
    """A run killed while saving leaves its temporary file (kata 12's save_checkpoint writes
    one, then renames it): such a file is never a checkpoint anyone can use."""
    for stray in sorted(out_dir.glob("*.tmp")):  # hidden files too
        stray.unlink(missing_ok=True)
        print(f"removed {stray}, a partial checkpoint left by an interrupted run", flush=True)


def prepare_run_directory(args, out_dir: Path, cfg, model_fields: dict,
                          rank: int) -> tuple:
    """Make sure no work is lost, and settle what a resumed run continues with.

    A new run never replaces another run's checkpoints, unless --overwrite. A resumed run
    takes the settings of the run it continues (from its last.pt), except those given on this
    command line: each change is printed and recorded. Returns (the settings to train with,
    the run's record of changes made when resuming, for config.json)."""
    if rank == 0 and out_dir.is_dir():
        remove_partial_checkpoints(out_dir)
    if not args.resume:
        held = [name for name in ("best.pt", "last.pt") if (out_dir / name).is_file()]
        if held and not args.overwrite:
            refuse(f"{out_dir} already holds a run ({', '.join(held)}), which a new run would "
                   "replace: continue it with RESUME=1, train into another directory with "
                   "OUT=dir, or replace it with OVERWRITE=1")
        return check_batch(cfg), []
    last = out_dir / "last.pt"
    if not last.is_file():
        refuse(f"cannot resume: no checkpoint at {last} (train without RESUME first, or give "
               "the run's OUT=dir)")
    checkpoint = read_checkpoint(last, f"Resume from the best evaluation instead by copying "
                                       f"{out_dir / 'best.pt'} over it, or start over with "
                                       "OVERWRITE=1 (without RESUME)")
    step = checkpoint.get("state", {}).get("step", 0)
    settings = asdict(cfg)
    run = {**settings, **{k: v for k, v in checkpoint.get("train_config", {}).items()
                          if k in settings and k not in HOW_TO_RUN}}
    given = {field: getattr(args, flag) for flag, field in FLAG_FIELDS.items()
             if getattr(args, flag) is not None}
    if args.lr is not None:
        given["min_lr"] = args.lr / 10
    changes = {field: [run[field], value] for field, value in given.items()
               if run[field] != value}
    run.update(given)
    run["warmup_steps"] = min(run["warmup_steps"], run["max_steps"])
    if run["max_steps"] <= step:
        refuse(f"the run in {out_dir} is at step {step} already, and STEPS={run['max_steps']} "
               f"ends there: give STEPS above {step} to train it further")
    saved_dropout = checkpoint["model_config"].get("dropout", model_fields.get("dropout"))
    if args.dropout is not None and args.dropout != saved_dropout:
        refuse(f"DROPOUT={args.dropout}: the run in {out_dir} has dropout {saved_dropout}, "
               "part of its model; resume it without DROPOUT, or start a new run with OUT=dir")
    model_fields["dropout"] = saved_dropout
    try:
        record = json.loads((out_dir / "config.json").read_text()).get("changed_on_resume", [])
    except (OSError, ValueError, AttributeError):
        record = []
    if changes:
        record = [*record, {"step": step, **changes}]
        if rank == 0:
            print("resuming with changed settings (recorded in config.json): " + ", ".join(
                f"{field} {before} -> {now}" for field, (before, now) in changes.items()),
                flush=True)
    return check_batch(replace(cfg, **run)), record


def check_batch(cfg):
    """Under torchrun every process takes an equal share of each batch."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if cfg.batch_size % world:
        refuse(f"BATCH={cfg.batch_size} does not divide evenly over {world} processes: give a "
               f"multiple of {world}")
    return cfg


def verified_data(name: str) -> Path:
    """data/<name>, checked against its published sha256 (the verdict is cached by size and
    modification time, so this is quick after the first time)."""
    try:
        return fetch.verified(name)
    except fetch.DataError as err:
        refuse(str(err))
