"""Pretrain the post-training track's base model: `make posttrain-base`, or
`python scripts/base_train.py --help`.

Kata 16's ModernGPT, trained by kata 12's trainer (the same seams as scripts/train.py) on the
train names of names.txt, one per line, with now and then a line of the alphabet and the
digits so that every character the tasks use has been seen. The held-out names, on which
every stage is graded, are never in this text. The vocabulary is kata 20's ChatTokenizer
(the task alphabet, a newline, then the special tokens), so the chat stages fine-tune this
model as it is. The model is only a base: it continues names, it does not answer.

    python scripts/base_train.py                      # configs/posttrain.json's "base"
    python scripts/base_train.py --steps 200 --overwrite

Writes <out>/base/: best.pt, last.pt, metrics.csv, loss.png, config.json, eval.json.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import asdict

import posttrain as pt  # scripts/posttrain.py (imports scripts/train.py: harness.use() first)
import processes  # scripts/processes.py: the device and torchrun's processes
import torch
import train as trainer
from guards import ArgumentParser, given_settings, validate_settings
from run_log import RunLog
from run_settings import add_run_flags
from shakespeare import split_data

import harness

ALPHABET_EVERY = 50  # a line "abc...z 0123456789" after this many names


def parse_args(argv=None):
    p = ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_flags(p)
    pt.add_track_flags(p)
    p.set_defaults(samples=5)
    return p.parse_args(argv)


def pretraining_text(names: list[str], seed: int = 0) -> str:
    """The train names in a shuffled order, one per line and each followed by itself
    backwards ("olivia aivilo"), with the alphabet line between."""
    names = list(names)
    random.Random(seed).shuffle(names)
    letters = "".join(sorted(set(pt.ALPHABET) - set("0123456789 ")))
    lines = []
    for i, name in enumerate(names):
        lines.append(f"{name} {name[::-1]}")
        if (i + 1) % ALPHABET_EVERY == 0:
            lines.append(f"{letters} 0123456789")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    validate_settings(args)
    track = pt.load_config(args.config)
    config = track["base"]
    runtime = processes.start_runtime(args)
    out_dir = pt.stage_dir(args, "base")
    tok = pt.tokenizer()
    model_fields = {**config["model"], "vocab_size": tok.vocab_size}
    cfg, resumes = trainer.settle_run(
        args, out_dir, dict(config["train"]), model_fields, args.config, runtime
    )
    train_names, _ = pt.names()
    train_ids, val_ids = split_data(pretraining_text(train_names), tok)
    model = trainer.new_model(model_fields, cfg.seed)
    trainer.write_run_config(
        out_dir,
        {
            "stage": "base",
            "model": model_fields,
            "train": asdict(cfg),
            "names": len(train_names),
            **({"changed_on_resume": resumes} if resumes else {}),
        },
    )
    print(
        trainer.describe_run(
            "base model", runtime, model, model_fields, tok.vocab_size, cfg, out_dir
        ),
        flush=True,
    )
    clock = pt.Clock()
    result, code = trainer.run_training(
        model,
        tok,
        train_ids,
        val_ids,
        cfg,
        runtime,
        args.resume,
        RunLog(out_dir, cfg),
        title="the train names",
    )
    if result is None:
        return code
    trainer.report_result(result, out_dir)
    if result["stopped"] == "asked":
        out = "" if args.out == str(pt.RUNS) else f" OUT={args.out}"
        print(f"continue with: make posttrain-base RESUME=1{out}{given_settings(args)}")
        return code
    model, tok, _ = pt.load_model(out_dir / "best.pt", runtime.device)
    pt.finish_stage(
        "base",
        out_dir,
        model,
        tok,
        {**track["eval"], "seed": cfg.seed},
        clock,
        result["step"],
        label="the base model, prompted with the chat template",
    )
    print_names(model, tok, args.samples, cfg.seed, runtime.device)
    return code


def print_names(model, tok, count: int, seed: int, device: str) -> None:
    """What the base model writes when left to itself: lines like its text."""
    if count <= 0:
        return
    generator = torch.Generator(device=device).manual_seed(seed)
    start = torch.tensor([tok.encode("\n")] * count, device=device)
    out = pt.models.generate(model, start, 32, temperature=0.8, generator=generator)
    written = [tok.decode(row[1:].tolist()).split("\n")[0] for row in out]
    print(f"the base model, left to itself, writes: {' | '.join(written)}")


if __name__ == "__main__":
    sys.exit(harness.run_program(main))
