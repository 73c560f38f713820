"""Talk to the trained assistant: `make chat`, or `python scripts/chat_cli.py --help`.

    make chat                                   # the GRPO model, else the latest stage there is
    make chat STAGE=sft                         # another stage of runs/posttrain
    printf 'reverse olivia\\n' | make chat       # one question from a pipe: the reply, then exit

The assistant knows the track's two tasks, "reverse NAME" and "count LETTER in NAME", in
lowercase letters, digits and spaces. Its reply is printed token by token as it is sampled
(greedy by default: the most likely token each time). An empty line or Ctrl-D leaves.
Each question starts a new conversation: the model was trained on one-turn conversations.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import posttrain as pt  # scripts/posttrain.py (imports scripts/train.py: harness.use() first)
import torch
from guards import ArgumentParser, refuse
from sampling import sample_next
from sft import prompt_for_reply
from shakespeare import pick_device

import harness

SEARCH_ORDER = ("grpo", "dpo", "sft", "base")  # the default: the furthest stage there is


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--out", default=str(pt.RUNS), help="the track's run directory (default runs/posttrain)"
    )
    p.add_argument(
        "--stage",
        choices=pt.STAGES,
        help="whose model to talk to (default: grpo, else the latest stage there is)",
    )
    p.add_argument("--checkpoint", help="a checkpoint file (overrides --stage)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = always the most likely")
    p.add_argument("--top-k", type=int, help="keep the k most likely tokens when sampling")
    p.add_argument("--max-new-tokens", type=int, default=40, help="longest reply")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", help="cuda, mps or cpu (default: the fastest there is)")
    args = p.parse_args(argv)
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        refuse(
            f"TEMPERATURE={args.temperature} cannot be used: give 0 (always the likeliest) "
            "or more, such as 0.8"
        )
    if args.top_k is not None and args.top_k < 1:
        refuse(f"TOP_K={args.top_k} would keep no token: give 1 or more, such as 5")
    if args.max_new_tokens < 1:
        refuse(f"--max-new-tokens={args.max_new_tokens} cannot be used: give 1 or more")
    return args


def find_checkpoint(args: argparse.Namespace) -> Path:
    """--checkpoint, else --stage's, else the furthest stage written; one line if none is."""
    if args.checkpoint:
        path = Path(args.checkpoint)
        if not path.is_file():
            refuse(f"no checkpoint at {path}: give CHECKPOINT= a file that exists")
        return path
    out = Path(args.out)
    target = "" if args.out == str(pt.RUNS) else f" OUT={args.out}"
    if args.stage:
        path = out / args.stage / pt.CHECKPOINT[args.stage]
        if not path.is_file():
            refuse(f"no {args.stage} model at {path}: run `{pt.TARGETS[args.stage]}{target}` first")
        return path
    for stage in SEARCH_ORDER:
        if (out / stage / pt.CHECKPOINT[stage]).is_file():
            return out / stage / pt.CHECKPOINT[stage]
    refuse(
        f"no trained assistant in {out}: run `make posttrain{target}` first (it trains "
        "every stage, a few minutes on a CPU)"
    )


def reply(model, tok, messages, args, generator, write) -> str:
    """Sample the assistant's reply token by token, writing each as it comes."""
    ids = torch.tensor([prompt_for_reply(tok, messages)], device=next(model.parameters()).device)
    text: list[str] = []

    def pick(logits):
        return sample_next(logits, args.temperature, args.top_k, None, generator)

    for token in pt.next_tokens(model, ids, args.max_new_tokens, pick):
        if int(token) >= len(tok.chars):  # <|end|>, or any other special token
            break
        text.append(tok.decode([int(token)]))
        write(text[-1])
    return "".join(text)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = args.device or pick_device()
    path = find_checkpoint(args)
    model, tok, checkpoint = pt.load_model(path, device)
    stage = checkpoint.get("stage", "base" if path.name == "best.pt" else "?")
    interactive = sys.stdin.isatty()
    known = "lowercase letters a-z, digits 0-9 and spaces"
    if interactive:
        print(
            f'talking to the {stage} model ({path}). Ask "reverse NAME" or "count LETTER '
            f'in NAME" ({known}); an empty line or Ctrl-D leaves.'
        )
    generator = torch.Generator(device=device).manual_seed(args.seed)
    block_size = model.config.block_size
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        except KeyboardInterrupt:
            print()
            break
        question = line.strip()
        if not question:
            break
        bad = next(((i, c) for i, c in enumerate(question) if c not in pt.ALPHABET), None)
        if bad:
            print(
                f"cannot encode {bad[1]!r} (position {bad[0]}): this assistant knows only "
                f"{known}; ask again",
                flush=True,
            )
            continue
        messages = [("user", question)]
        if len(prompt_for_reply(tok, messages)) >= block_size and not model.config.rolling:
            print(
                f"that is too long for the model's context of {block_size} tokens: ask "
                "something shorter",
                flush=True,
            )
            continue
        print("assistant> ", end="", flush=True)
        reply(model, tok, messages, args, generator, lambda piece: print(piece, end="", flush=True))
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(harness.run_program(main))
