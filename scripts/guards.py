"""What scripts/train.py and scripts/sample.py check before they start: each problem is one
line that says what is wrong and what to do, and nothing is written before the checks pass.

- every setting given on the command line (validate_settings);
- the run directory: a new run never replaces another run's checkpoints unless --overwrite,
  a resumed run takes the settings of the run it continues, and stray temporary files from
  a killed save are removed (prepare_run_directory);
- the device asked for is one torch knows and this machine has (check_device);
- a checkpoint that is empty, cut short, not a checkpoint (random bytes included), or would
  run code when loaded is named, never shown as a traceback (read_checkpoint);
- a resumed run is continued only with the model it holds (check_resume_model);
- the data file is the published one, by sha256 (verified_data);
- one training at a time in a run directory: a lock that names the running one's pid, taken
  over from a process that died (claim_run_directory); files are written to a temporary
  file and renamed (write_atomic), and a full disk is one line (on_disk_errors).

The scripts import this after harness.use(), so `shakespeare` is the chosen kata 12.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import functools
import json
import math
import os
import pickle
import sys
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import NoReturn

from shakespeare import load_checkpoint

from harness.data import fetch

# The settings a user gives (flag: make variable, what it must be, its check).
SETTINGS = {
    "steps": ("STEPS", "a whole number of steps, 1 or more", lambda v: v >= 1),
    "batch": ("BATCH", "a whole number of sequences per step, 1 or more", lambda v: v >= 1),
    "lr": ("LR", "a learning rate above 0, such as 1e-3", lambda v: math.isfinite(v) and v > 0),
    "dropout": ("DROPOUT", "a probability in [0, 1), such as 0.2", lambda v: 0 <= v < 1),
    "eval_interval": ("EVAL_INTERVAL", "a whole number of steps, 1 or more", lambda v: v >= 1),
    "eval_iters": ("--eval-iters", "a whole number of batches, 1 or more", lambda v: v >= 1),
    "patience": (
        "PATIENCE",
        "0 (never stop early) or a whole number of evaluations",
        lambda v: v >= 0,
    ),
    "threads": ("THREADS", "a whole number of threads, 1 or more", lambda v: v >= 1),
    "samples": ("--samples", "0 or more", lambda v: v >= 0),
}
# The TrainConfig fields set by flags (the others come from the preset), and those that say
# how to run rather than what to train (a resumed run takes them from this command line).
FLAG_FIELDS = {
    "steps": "max_steps",
    "batch": "batch_size",
    "lr": "lr",
    "eval_interval": "eval_interval",
    "eval_iters": "eval_iters",
    "patience": "patience",
    "seed": "seed",
}
HOW_TO_RUN = ("out_dir", "compile", "parallel")


def refuse(message: str) -> NoReturn:
    """Stop before anything is written, with one line that says what is wrong and what to do
    (printed by the first process only, under torchrun)."""
    if os.environ.get("RANK", "0") == "0":
        print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a value of the wrong kind (STEPS=abc) reported in one line."""

    def error(self, message: str) -> NoReturn:
        refuse(f"{message} (--help lists every setting)")


def validate_settings(args: argparse.Namespace) -> None:
    """Refuse the first setting out of its range (SETTINGS), and a device that is not here,
    before anything runs."""
    for name, (variable, must_be, ok) in SETTINGS.items():
        value = getattr(args, name)
        if value is not None and not ok(value):
            refuse(f"{variable}={value} cannot be used: give {must_be}")
    if getattr(args, "device", None):
        check_device(args.device)


def check_device(name: str) -> None:
    """DEVICE=name must be a device torch knows, and one this machine has."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        refuse(
            f"DEVICE={name} is not a device torch knows: give cpu, cuda (an NVIDIA GPU), "
            "cuda:N or mps (an Apple GPU), or leave DEVICE unset for the fastest here"
        )
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            refuse(
                f"DEVICE={name}: this machine has no CUDA GPU that torch can use (torch "
                f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); leave "
                "DEVICE unset to use the fastest device here, or give DEVICE=cpu"
            )
        if device.index is not None and device.index >= count:
            refuse(
                f"DEVICE={name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            refuse(
                f"DEVICE={name}: the Apple GPU (mps) is not available here; leave DEVICE "
                "unset, or give DEVICE=cpu"
            )
    elif device.type != "cpu":
        refuse(f"DEVICE={name}: the programs run on cpu, cuda or mps, not {device.type}")


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
    except Exception as err:  # noqa: BLE001  random bytes fail in many ways (IndexError, ...)
        if path.stat().st_size == 0:
            why = "it is empty (0 bytes)"
        elif isinstance(err, pickle.UnpicklingError) and "global" in str(err).lower():
            why = (
                "it holds objects other than tensors and plain data, which are not loaded "
                "because loading them could run code"
            )
        else:
            why = "it is cut short or is not a checkpoint"
        refuse(f"{path} is damaged: {why}. {what_to_do}")
    if (
        not isinstance(checkpoint, dict)
        or not {"model", "model_config"} <= set(checkpoint)
        or not isinstance(checkpoint["model_config"], dict)
    ):
        refuse(f"{path} is damaged: it holds no model. {what_to_do}")
    return checkpoint


def check_resume_model(last: Path, model_fields: dict) -> None:
    """A run resumes only with the model it holds: the same ARCH and PRESET (the same
    config fields), so nothing is written for a resume that would then fail."""
    saved = read_checkpoint(last, "Start over with OVERWRITE=1 (without RESUME)")["model_config"]
    differ = sorted(
        k for k in set(saved) | set(model_fields) if saved.get(k) != model_fields.get(k)
    )
    if differ:
        shown = ", ".join(
            f"{k} {saved.get(k)} (this command: {model_fields.get(k)})" for k in differ[:4]
        ) + (", ..." if len(differ) > 4 else "")
        refuse(
            f"cannot resume {last}: it holds another model ({shown}); resume with the "
            "run's own PRESET= and ARCH= (its config.json says which), or train into a "
            "new OUT=dir"
        )


def remove_partial_checkpoints(out_dir: Path) -> None:
    """A run killed while saving leaves its temporary file (kata 12's save_checkpoint writes
    one, then renames it): such a file is never a checkpoint anyone can use."""
    for stray in sorted(out_dir.glob("*.tmp")):  # hidden files too
        stray.unlink(missing_ok=True)
        print(f"removed {stray}, a partial checkpoint left by an interrupted run", flush=True)


def prepare_run_directory(args, out_dir: Path, cfg, model_fields: dict, rank: int) -> tuple:
    """Make sure no work is lost, and settle what a resumed run continues with.

    A new run never replaces another run's checkpoints, unless --overwrite. A resumed run
    takes the settings of the run it continues (from its last.pt), except those given on this
    command line: each change is printed and recorded. Returns (the settings to train with,
    the run's record of changes made when resuming, for config.json). The partial files of a
    killed save are removed first, unless another training holds the directory (then they
    may be its save in progress: claim_run_directory refuses later, naming it)."""
    if rank == 0 and out_dir.is_dir() and not in_use(out_dir):
        remove_partial_checkpoints(out_dir)
    if not args.resume:
        held = [name for name in ("best.pt", "last.pt") if (out_dir / name).is_file()]
        if held and not args.overwrite:
            refuse(
                f"{out_dir} already holds a run ({', '.join(held)}), which a new run would "
                "replace: continue it with RESUME=1, train into another directory with "
                "OUT=dir, or replace it with OVERWRITE=1"
            )
        return check_batch(cfg), []
    last = out_dir / "last.pt"
    if not last.is_file():
        refuse(
            f"cannot resume: no checkpoint at {last} (train without RESUME first, or give "
            "the run's OUT=dir)"
        )
    checkpoint = read_checkpoint(
        last,
        f"Resume from the best evaluation instead by copying "
        f"{out_dir / 'best.pt'} over it, or start over with "
        "OVERWRITE=1 (without RESUME)",
    )
    step = checkpoint.get("state", {}).get("step", 0)
    settings = asdict(cfg)
    run = {
        **settings,
        **{
            k: v
            for k, v in checkpoint.get("train_config", {}).items()
            if k in settings and k not in HOW_TO_RUN
        },
    }
    given = {
        field: getattr(args, flag)
        for flag, field in FLAG_FIELDS.items()
        if getattr(args, flag) is not None
    }
    if args.lr is not None:
        given["min_lr"] = args.lr * run["min_lr"] / run["lr"]  # the run's share of its lr
    changes = {field: [run[field], value] for field, value in given.items() if run[field] != value}
    run.update(given)
    run["warmup_steps"] = min(run["warmup_steps"], run["max_steps"])
    if run["max_steps"] <= step:
        refuse(
            f"the run in {out_dir} is at step {step} already, and STEPS={run['max_steps']} "
            f"ends there: give STEPS above {step} to train it further"
        )
    saved_dropout = checkpoint["model_config"].get("dropout", model_fields.get("dropout"))
    if args.dropout is not None and args.dropout != saved_dropout:
        refuse(
            f"DROPOUT={args.dropout}: the run in {out_dir} has dropout {saved_dropout}, "
            "part of its model; resume it without DROPOUT, or start a new run with OUT=dir"
        )
    model_fields["dropout"] = saved_dropout
    try:
        record = json.loads((out_dir / "config.json").read_text()).get("changed_on_resume", [])
    except (OSError, ValueError, AttributeError):
        record = []
    if changes:
        record = [*record, {"step": step, **changes}]
        if rank == 0:
            print(
                "resuming with changed settings (recorded in config.json): "
                + ", ".join(
                    f"{field} {before} -> {now}" for field, (before, now) in changes.items()
                ),
                flush=True,
            )
    return check_batch(replace(cfg, **run)), record


def check_batch(cfg):
    """Under torchrun every process takes an equal share of each batch."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if cfg.batch_size % world:
        refuse(
            f"BATCH={cfg.batch_size} does not divide evenly over {world} processes: give a "
            f"multiple of {world}"
        )
    return cfg


def verified_data(name: str) -> Path:
    """data/<name>, checked against its published sha256 (the verdict is cached by size and
    modification time, so this is quick after the first time)."""
    try:
        return fetch.verified(name)
    except fetch.DataError as err:
        refuse(str(err))


# ---------------------------------------------------------------- what a run writes

LOCK = ".lock"  # in the run directory: the pid of the training writing there
_locks: dict[str, int] = {}  # run directory -> the file descriptor holding its lock


def in_use(out_dir: Path) -> bool:
    """Whether another process holds out_dir's lock (a training writing there now)."""
    if str(out_dir.resolve()) in _locks:
        return False
    try:
        fd = os.open(out_dir / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False  # no lock file: no training has claimed it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def claim_run_directory(out_dir: Path) -> None:
    """Make out_dir this process's until it ends: a lock (flock, freed by the system when the
    process dies, so a stale one is simply taken over) that a second training into the same
    directory cannot take; then remove the partial files of a killed save. Called once every
    setting is checked, right before the first file is written; again is a no-op."""
    key = str(out_dir.resolve())
    if key in _locks:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        refuse(
            f"{out_dir} is in use: another training (pid {holder}) is writing to it; wait "
            "for it to end, or train into another directory with OUT=dir"
        )
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _locks[key] = fd
    remove_partial_checkpoints(out_dir)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write path whole or not at all: a temporary file beside it, flushed to disk, renamed
    over it (a kill -9 or a full disk leaves the old file as it was)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


DISK_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "a file grew past the size allowed",
    errno.EROFS: "the file system is read-only",
    errno.EIO: "the disk reported an error",
}


def disk_error(err: BaseException) -> OSError | None:
    """The OSError of a full (or failing) disk anywhere in err's chain (torch wraps it in a
    RuntimeError), or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in DISK_ERRORS:
            return err
        err = err.__cause__ or err.__context__
    return None


def on_disk_errors(main):
    """main(), with a full disk (or another failing write) reported in one line, not as a
    chain of tracebacks: what failed, and that the files written before are intact."""

    @functools.wraps(main)
    def guarded(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except BaseException as err:
            found = disk_error(err)
            if found is None:
                raise
            where = f" writing {found.filename}" if found.filename else ""
            print(
                f"error: {DISK_ERRORS[found.errno]}{where} ({found.strerror}). Every file "
                "written before is intact (each is written whole or not at all): free some "
                "space, then continue with RESUME=1",
                file=sys.stderr,
                flush=True,
            )
            return 1

    return guarded
