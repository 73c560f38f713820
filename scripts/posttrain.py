"""The pieces every post-training program shares (scripts/base_train.py, chat_sft.py,
chat_dpo.py, chat_grpo.py, chat_cli.py): the track's run directory, its settings and their
checks, the names and the tasks, checkpoints, the step loop with its log, and the held-out
evaluation printed after every stage.

The track lives in one directory (runs/posttrain, or --out): each stage reads the stage
before it and writes its own folder,

    base/  best.pt, last.pt, metrics.csv, loss.png   kata 12's trainer on the train names
    sft/   model.pt, metrics.csv, eval.json          kata 20, from base/best.pt
    dpo/   model.pt, metrics.csv, eval.json          kata 21, from sft/model.pt
    grpo/  model.pt, metrics.csv, eval.json, reward.png   kata 22, from sft/model.pt

Settings come from configs/posttrain.json (one section per stage) unless a flag says
otherwise; the first bad one is refused in one line before anything is written.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import models  # scripts/models.py
import processes  # scripts/processes.py: the device and torchrun's processes
import torch
import train as trainer  # scripts/train.py: harness.use() on import, and the run's seams
from guards import SETTINGS, ArgumentParser, read_checkpoint, refuse, verified_data
from guards import validate_settings as validate_run_flags
from modern import new_cache
from schedules import lr_at
from sft import ChatTokenizer, prompt_for_reply
from shakespeare import save_checkpoint
from tasks import ALPHABET, KINDS, accuracy, make_tasks, split_names

ROOT = trainer.ROOT
RUNS = ROOT / "runs" / "posttrain"
CONFIG = ROOT / "configs" / "posttrain.json"
STAGES = ("base", "sft", "dpo", "grpo")
# What each stage starts from, the make target that writes it, and its checkpoint's name.
STARTS_FROM = {"sft": "base", "dpo": "sft", "grpo": "sft"}
TARGETS = {stage: f"make posttrain-{stage}" for stage in STAGES}
CHECKPOINT = {"base": "best.pt", "sft": "model.pt", "dpo": "model.pt", "grpo": "model.pt"}
NAMES_SEED = 0  # the train / held-out split of names.txt: the same for every stage and seed
HELD_OUT = 0.1

# The stage settings a user gives (flag: make variable, what it must be, its check). Flags
# that every training program has (steps, batch, lr, threads) are checked by guards.py.
STAGE_SETTINGS = {
    "warmup": ("--warmup", "0 or more steps", lambda v: v >= 0),
    "beta": ("BETA", "a number above 0, such as 0.1", lambda v: math.isfinite(v) and v > 0),
    "pairs": ("PAIRS", "a whole number of tasks, 1 or more", lambda v: v >= 1),
    "samples": ("--samples", "a whole number of tries, 1 or more", lambda v: v >= 1),
    "group_size": (
        "GROUP",
        "a whole number of replies, 2 or more (one reply has no group to be compared with)",
        lambda v: v >= 2,
    ),
    "prompts": ("PROMPTS", "a whole number of prompts per step, 1 or more", lambda v: v >= 1),
    "temperature": (
        "TEMPERATURE",
        "a number above 0, such as 1.0 (sampling needs some randomness)",
        lambda v: math.isfinite(v) and v > 0,
    ),
    "kl_beta": (
        "KL",
        "0 (no KL penalty) or more, such as 0.02",
        lambda v: math.isfinite(v) and v >= 0,
    ),
    "clip_eps": ("CLIP", "a number in (0, 1), such as 0.2", lambda v: 0 < v < 1),
    "inner_steps": ("--inner-steps", "a whole number of steps, 1 or more", lambda v: v >= 1),
    "eval_tasks": (
        "EVAL_TASKS",
        "a whole number of held-out tasks, 2 or more (one per kind)",
        lambda v: v >= len(KINDS),
    ),
    "max_new_tokens": ("--max-new-tokens", "a whole number of tokens, 1 or more", lambda v: v >= 1),
}


# ---------------------------------------------------------------- settings


def add_track_flags(p: argparse.ArgumentParser) -> None:
    """The flags every post-training program has: where the track lives, its config file."""
    p.add_argument(
        "--out",
        default=str(RUNS),
        help="the track's run directory: each stage "
        "reads <out>/<stage before>/ and writes <out>/<stage>/ (default runs/posttrain)",
    )
    p.add_argument(
        "--config",
        default=str(CONFIG),
        help="the settings of every stage "
        "(default configs/posttrain.json; configs/posttrain-tiny.json: seconds)",
    )


def stage_parser(doc: str) -> ArgumentParser:
    """The parser of a chat stage: the track's flags, and those of any training run."""
    p = ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_track_flags(p)
    p.add_argument("--device", help="cuda, mps or cpu (default: the fastest there is)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--batch", type=int, help="conversations per step")
    p.add_argument("--lr", type=float, help="peak learning rate (warmup, then a cosine to lr/10)")
    p.add_argument("--warmup", type=int, help="warmup steps")
    p.add_argument("--seed", type=int, help="the seed of the stage's tasks and sampling")
    p.add_argument("--eval-tasks", type=int, help="held-out tasks in the evaluation")
    p.add_argument("--overwrite", action="store_true", help="replace the stage's run")
    return p


def load_config(path: str | Path) -> dict:
    """The track's settings, one section per stage (configs/posttrain.json)."""
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        refuse(
            f"no config file {path}: give --config configs/posttrain.json (or another file "
            "of that shape)"
        )
    except ValueError as err:
        refuse(f"{path} is not valid JSON ({err}): fix it, or give another --config")
    missing = [s for s in (*STAGES, "eval") if s not in config]
    if missing:
        refuse(
            f"{path} has no section for {', '.join(missing)}: every stage needs one "
            "(see configs/posttrain.json)"
        )
    return config


def stage_settings(args: argparse.Namespace, stage: str) -> dict:
    """The stage's settings: its config section, the eval section, then every flag given.
    The first one out of range is refused in one line (guards.refuse)."""
    config = load_config(args.config)
    settings = {**config["eval"], **config[stage]}
    for name, value in vars(args).items():
        if value is not None and name not in ("out", "config", "device", "overwrite"):
            settings[name] = value
    flags = argparse.Namespace(**{name: settings.get(name) for name in SETTINGS})
    validate_run_flags(flags)  # steps, batch, lr, threads: the same checks as make train
    for name, (variable, must_be, ok) in STAGE_SETTINGS.items():
        value = settings.get(name)
        if value is not None and not ok(value):
            refuse(f"{variable}={value} cannot be used: give {must_be}")
    settings.setdefault("seed", 1)
    return settings


def stage_dir(args: argparse.Namespace, stage: str) -> Path:
    return Path(args.out) / stage


def prepare_stage_dir(args: argparse.Namespace, stage: str) -> Path:
    """The stage's directory: a run there is never replaced unless --overwrite."""
    out_dir = stage_dir(args, stage)
    held = out_dir / CHECKPOINT[stage]
    if held.is_file() and not args.overwrite:
        refuse(
            f"{out_dir} already holds a run ({held.name}), which a new one would replace: "
            "replace it with OVERWRITE=1, or give another OUT=dir"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


# ---------------------------------------------------------------- the data


def tokenizer() -> ChatTokenizer:
    """Kata 20's tokenizer over the task alphabet and a newline (which ends a name in the
    pretraining text): the base model's vocabulary already has the special ids."""
    return ChatTokenizer(ALPHABET + "\n")


def names() -> tuple[list[str], list[str]]:
    """(train names, held-out names) of names.txt: held-out names are never trained on."""
    lines = verified_data("names.txt").read_text().split()
    return split_names([n.strip() for n in lines if n.strip()], HELD_OUT, NAMES_SEED)


def heldout_tasks(settings: dict) -> list:
    """The evaluation: the same held-out tasks for every stage and every seed."""
    return make_tasks(names()[1], settings["eval_tasks"], seed=settings["eval_seed"])


# ---------------------------------------------------------------- checkpoints


def load_stage(args: argparse.Namespace, stage: str, device: str):
    """(model, tokenizer, checkpoint) of a stage's run; one line saying which make target
    writes it when it is not there."""
    path = stage_dir(args, stage) / CHECKPOINT[stage]
    if not path.is_file():
        refuse(
            f"no {stage} model at {path}: run `{TARGETS[stage]}` first"
            f"{'' if args.out == str(RUNS) else f' with OUT={args.out}'}"
        )
    return load_model(path, device)


def load_model(path: Path, device: str):
    """(model in eval mode, tokenizer, checkpoint) from any of the track's checkpoints."""
    checkpoint = read_checkpoint(path, f"Run its stage again with OVERWRITE=1 ({path.parent})")
    saved = checkpoint.get("tokenizer", {})
    if "specials" not in saved:
        refuse(
            f"{path} is not a post-training checkpoint (its tokenizer has no special "
            "tokens): give one written by make posttrain"
        )
    model = models.build_model(checkpoint["model_config"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), ChatTokenizer.from_dict(saved), checkpoint


def save_stage(
    out_dir: Path, stage: str, model, tok: ChatTokenizer, settings: dict, started_from: Path
) -> Path:
    path = out_dir / CHECKPOINT[stage]
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "model_config": vars(model.config).copy(),
            "tokenizer": tok.to_dict(),
            "stage": stage,
            "settings": settings,
            "started_from": str(started_from),
        },
    )
    return path


def frozen_copy(model):
    """The reference of DPO and GRPO: a copy of the starting model that never trains."""
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


def optimizer_for(model, lr: float) -> torch.optim.Optimizer:
    """AdamW without weight decay: fine-tuning moves a trained model a little."""
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)


# ---------------------------------------------------------------- the step loop


class Clock:
    """A stage's wall-clock and CPU seconds since it started (the CPU time is what this
    process used: on a busy machine it is the steadier figure)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def seconds(self) -> dict[str, float]:
        return {
            "train_s": round(time.perf_counter() - self.wall, 2),
            "train_cpu_s": round(time.process_time() - self.cpu, 2),
        }


class StageLog:
    """metrics.csv (one row per step), a progress bar on a terminal, a line now and then."""

    def __init__(self, out_dir: Path, stage: str, steps: int, every: int):
        from tqdm import tqdm

        self.path, self.stage, self.every = out_dir / "metrics.csv", stage, max(1, every)
        self.bar = tqdm(
            total=steps, unit="step", dynamic_ncols=True, disable=not sys.stderr.isatty()
        )
        self.file, self.writer = None, None
        self.started = time.perf_counter()

    def __call__(self, step: int, lr: float, values: dict) -> None:
        row = {
            "step": step,
            "elapsed_s": f"{time.perf_counter() - self.started:.2f}",
            "lr": f"{lr:.4g}",
            **{k: f"{v:.5g}" for k, v in values.items()},
        }
        if self.writer is None:
            self.file = open(self.path, "w", newline="")
            self.writer = csv.DictWriter(self.file, list(row))
            self.writer.writeheader()
        self.writer.writerow(row)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
        self.bar.update(1)
        if step % self.every == 0 or step == self.bar.total:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
            self.bar.write(f"{self.stage} step {step:>4}: {shown} [{row['elapsed_s']}s]")
            self.file.flush()
            sys.stdout.flush()

    def close(self) -> None:
        self.bar.close()
        if self.file:
            self.file.close()


def run_steps(
    stage: str, out_dir: Path, settings: dict, optimizer, step: Callable[[int], dict]
) -> int:
    """settings["steps"] calls of step(i) -> {name: float}, with linear warmup and a cosine
    to lr/10 (kata 10's lr_at) set before each. Ctrl-C ends the loop cleanly after the step
    in progress (the model so far is saved and evaluated); a second Ctrl-C aborts.
    Returns the number of steps done."""
    steps, lr = settings["steps"], settings["lr"]
    warmup = min(settings.get("warmup", 0), steps)
    log = StageLog(out_dir, stage, steps, settings.get("log_every", max(1, steps // 10)))
    interrupted = False

    def on_sigint(signum, frame):
        nonlocal interrupted
        interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nCtrl-C: finishing this step, then saving (Ctrl-C again to abort)", flush=True)

    signal.signal(signal.SIGINT, on_sigint)
    done = 0
    try:
        for i in range(steps):
            if interrupted:
                break
            rate = lr_at(i, lr, lr / 10, warmup, steps)
            for group in optimizer.param_groups:
                group["lr"] = rate
            values = step(i)
            done = i + 1
            log(done, rate, values)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log.close()
    return done


# ---------------------------------------------------------------- evaluation


def next_tokens(model, ids: torch.Tensor, max_new_tokens: int, pick) -> Iterator[torch.Tensor]:
    """Continue each row of ids (B, T) one token at a time through a KV cache (kata 16's
    new_cache): yields the (B,) tokens pick(last logits (B, V)) chose at each step, until
    max_new_tokens or a full context (block_size, unless the model rolls). The caller stops
    when it has what it wants. No gradients; the model in eval mode meanwhile."""
    room = (
        max_new_tokens
        if model.config.rolling
        else min(max_new_tokens, model.config.block_size - ids.size(1) + 1)
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            cache, feed = new_cache(model, ids.size(0)), ids
            for _ in range(max(room, 0)):
                logits, _ = model(feed, kv_cache=cache)
                chosen = pick(logits[:, -1, :]).reshape(-1)
                yield chosen
                feed = chosen[:, None]
    finally:
        model.train(was_training)


def greedy_replies(
    model, tok: ChatTokenizer, prompts: list[str], max_new_tokens: int, batch: int = 64
) -> list[str]:
    """kata 20's generate_reply at temperature 0 for many one-turn prompts, faster: prompts
    whose rendered ids have the same length go through the model together (no padding is
    needed), each row ending at its first special token. The same replies, in order."""
    rendered = [prompt_for_reply(tok, [("user", text)]) for text in prompts]
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(rendered):
        by_length.setdefault(len(ids), []).append(i)
    device = next(model.parameters()).device
    replies = [""] * len(prompts)
    for members in by_length.values():
        for first in range(0, len(members), batch):
            rows = members[first : first + batch]
            ids = torch.tensor([rendered[i] for i in rows], device=device)
            steps = []
            for tokens in next_tokens(model, ids, max_new_tokens, lambda z: z.argmax(-1)):
                steps.append(tokens.tolist())
                if all(any(t >= len(tok.chars) for t in row) for row in zip(*steps)):
                    break  # every row has reached a special token
            for row, out in zip(rows, zip(*steps), strict=True) if steps else ():
                cut = next((k for k, t in enumerate(out) if t >= len(tok.chars)), len(out))
                replies[row] = tok.decode(out[:cut])
    return replies


def evaluate(model, tok: ChatTokenizer, tasks, max_new_tokens: int) -> dict[str, float]:
    """Held-out accuracy per kind and "all": a greedy reply to each task, graded exactly."""
    return accuracy(tasks, greedy_replies(model, tok, [t.prompt for t in tasks], max_new_tokens))


def describe_accuracy(scores: dict[str, float]) -> str:
    return ", ".join(
        f"{kind} {100 * scores[kind]:.1f}%" for kind in (*KINDS, "all") if kind in scores
    )


def finish_stage(
    stage: str,
    out_dir: Path,
    model,
    tok: ChatTokenizer,
    settings: dict,
    clock: Clock,
    steps_done: int,
    extra: dict | None = None,
    label: str | None = None,
) -> dict:
    """Evaluate on the held-out tasks, print the line, write eval.json; returns the record."""
    timing = clock.seconds()  # the stage's own time, its evaluation left out
    tasks = heldout_tasks(settings)
    started = time.perf_counter()
    scores = evaluate(model, tok, tasks, settings["max_new_tokens"])
    record = {
        "stage": stage,
        "heldout_accuracy": scores,
        "eval_tasks": len(tasks),
        "steps": steps_done,
        **timing,
        "eval_s": round(time.perf_counter() - started, 2),
        "seed": settings["seed"],
        "settings": settings,
        **(extra or {}),
    }
    (out_dir / "eval.json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"held-out accuracy of {label or 'the ' + stage + ' model'} ({len(tasks)} tasks on "
        "names never trained on): "
        f"{describe_accuracy(scores)}; {timing['train_s'] / 60:.2f} min of training "
        f"({timing['train_cpu_s'] / 60:.2f} CPU min); {out_dir}",
        flush=True,
    )
    return record


def start(args: argparse.Namespace, stage: str):
    """What every chat stage does first: settings checked, the device, the directory, the
    model it starts from. Returns (settings, runtime, out_dir, model, tok, the path it started
    from, a Clock started now)."""
    settings = stage_settings(args, stage)
    runtime = processes.start_runtime(args)
    out_dir = prepare_stage_dir(args, stage)
    before = STARTS_FROM[stage]
    model, tok, _ = load_stage(args, before, runtime.device)
    torch.manual_seed(settings["seed"])
    print(
        f"{stage} on {runtime.device}: from {stage_dir(args, before) / CHECKPOINT[before]} "
        f"({model.num_params() / 1e6:.2f}M parameters); "
        + ", ".join(f"{k} {v}" for k, v in config_shown(settings).items()),
        flush=True,
    )
    return (
        settings,
        runtime,
        out_dir,
        model,
        tok,
        stage_dir(args, before) / CHECKPOINT[before],
        Clock(),
    )


def config_shown(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in ("eval_seed", "log_every", "about")}


def sampler(settings: dict, device: str) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(settings["seed"])
