"""How a run's settings are chosen: the presets in configs/, the default run directory's name
(which scripts/sample.py reads too), the flags every run of kata 12's trainer takes and how
they change a preset's settings, and the settings a "continue with:" hint repeats. Whether
the settings can work is checked by scripts/guards.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402

harness.use(harness.program_impl())  # as train.py does: the chosen katas 09 and 12

from gpt import PRESETS  # noqa: E402
from shakespeare import TrainConfig  # noqa: E402

CONFIGS = ROOT / "configs"


def presets() -> list[str]:
    """The files in configs/ that make train can use (posttrain*.json are the track's)."""
    return sorted(p.stem for p in CONFIGS.glob("*.json") if not p.stem.startswith("posttrain"))


def default_preset(device: str) -> str:
    """A GPU trains the 10.7M-parameter model; a CPU a small one that finishes in minutes."""
    return "cpu" if device == "cpu" else "medium"


def run_name(
    preset: str, arch: str = "gpt2", mlp: str | None = None, tokenizer: str = "char"
) -> str:
    """The default run directory's name, runs/<preset>[-modern][-moe][-bpe]: a modern run
    never overwrites a GPT-2 one, an MoE run a dense one, nor a BPE run a character one.
    scripts/sample.py reads the same name from the same settings."""
    name = preset if arch == "gpt2" else f"{preset}-{arch}"
    name = f"{name}-moe" if mlp == "moe" else name
    return f"{name}-bpe" if tokenizer == "bpe" else name


def load_preset(name: str) -> tuple[dict, dict]:
    """(GPTConfig fields, TrainConfig fields) from configs/<name>.json."""
    path = CONFIGS / f"{name}.json"
    if not path.is_file() or name not in presets():
        raise SystemExit(
            f"no preset {name!r}: choose one of {', '.join(presets())} (files in {CONFIGS})"
        )
    config = json.loads(path.read_text())
    model = dict(config["model"])
    base = PRESETS[model.pop("preset")]  # a kata 09 preset, then the file's changes
    return asdict(replace(base, **model)), dict(config["train"])


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags every run of kata 12's trainer takes (scripts/train.py, scripts/base_train.py):
    how long and how fast to train, where, and what to do with a run already there.
    guards.validate_settings checks each of them."""
    p.add_argument("--steps", type=int, help="max_steps (the cosine ends there)")
    p.add_argument("--batch", type=int, help="sequences per step (over all GPUs together)")
    p.add_argument(
        "--lr", type=float, help="peak learning rate (min_lr keeps the preset's share of it)"
    )
    p.add_argument("--dropout", type=float, help="dropout probability in the model")
    p.add_argument("--eval-interval", type=int, help="steps between evaluations")
    p.add_argument("--eval-iters", type=int, help="batches per split in each evaluation")
    p.add_argument(
        "--patience",
        type=int,
        help="evaluations without improvement before stopping (0: never stop early)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in a directory that holds one, replacing its checkpoints",
    )
    p.add_argument("--device", help="cuda, mps or cpu (default: the fastest there is)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    p.add_argument("--samples", type=int, default=2, help="samples printed at the end")


def apply_flags(args: argparse.Namespace, train_fields: dict, model_fields: dict) -> None:
    """The flags given on the command line, over a config's settings (in place)."""
    overrides = {
        "max_steps": args.steps,
        "batch_size": args.batch,
        "lr": args.lr,
        "eval_interval": args.eval_interval,
        "eval_iters": args.eval_iters,
        "patience": args.patience,
        "seed": args.seed,
    }
    preset_steps, min_share = train_fields["max_steps"], train_fields["min_lr"] / train_fields["lr"]
    train_fields.update({k: v for k, v in overrides.items() if v is not None})
    if args.lr is not None:
        train_fields["min_lr"] = args.lr * min_share  # lr / 10 in most presets
    if train_fields["max_steps"] < preset_steps:
        # A shorter run keeps the preset's shape: warmup takes the same share of it, so the
        # learning rate still decays (STEPS=60 on `cpu`: 4 warmup steps, not all 60).
        share = train_fields["warmup_steps"] / preset_steps
        train_fields["warmup_steps"] = round(share * train_fields["max_steps"])
    if getattr(args, "compile", False):
        train_fields["compile"] = True
    if getattr(args, "fsdp", False):
        train_fields["parallel"] = "fsdp"
    if getattr(args, "optim", None):
        train_fields["optimizer"] = args.optim
    if args.dropout is not None:
        model_fields["dropout"] = args.dropout


def train_config(train_fields: dict, source: str) -> TrainConfig:
    """Kata 12's TrainConfig from a config file's settings; an unknown one is named."""
    unknown = set(train_fields) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise SystemExit(f"{source}: unknown train settings {sorted(unknown)}")
    return TrainConfig(**train_fields)


def moe_settings(args: argparse.Namespace) -> str:
    """MLP=moe and its sizes as given, for the hint that repeats a command."""
    given = [("MLP", args.mlp), ("N_EXPERT", args.n_expert), ("TOP_K", args.top_k)]
    return "".join(f" {name}={value}" for name, value in given if value is not None)


def tokenizer_settings(args: argparse.Namespace) -> str:
    """TOKENIZER=bpe and a BPE_VOCAB other than the default, for the hint that repeats a
    command (a run resumes only with its own tokenizer)."""
    if args.tokenizer != "bpe":
        return ""
    return " TOKENIZER=bpe" + (f" BPE_VOCAB={args.bpe_vocab}" if args.bpe_vocab != 768 else "")
