"""Generate text from a trained checkpoint: `make sample`, or `python scripts/sample.py --help`.

    python scripts/sample.py --prompt "ROMEO:" --temperature 0.8 --top-k 40 --n-tokens 300
    python scripts/sample.py --prompt "To be" --show-top 5 --n-tokens 20   # see each choice

Reads best.pt from the run directory `make train` writes with the same settings (runs/medium
on a GPU, runs/cpu on a CPU; runs/cpu-modern with --arch modern, runs/cpu-modern-moe with
--arch modern --mlp moe, runs/cpu-bpe with --tokenizer bpe: run_settings.run_name) unless --out or
--checkpoint says otherwise. The checkpoint says which model it holds. In a prompt, the
two characters \\n stand for a newline.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402

harness.use(harness.program_impl())  # reads GPT_KATAS_REF too

import models  # noqa: E402  (scripts/models.py: gpt2 or modern)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from guards import (  # noqa: E402  (scripts/guards.py)
    ArgumentParser,
    check_device,
    read_checkpoint,
    refuse,
)
from run_settings import default_preset, run_name  # noqa: E402  (the run directory train.py chose)
from sampling import sample_next  # noqa: E402
from shakespeare import pick_device  # noqa: E402

MAX_TOKENS = 1_000_000  # N_TOKENS above this is refused: hours of output no one reads
CHUNK = 256  # tokens generated between two prints: the output streams as it is made


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--out", help="run directory holding best.pt (default: runs/<preset for this machine>)"
    )
    p.add_argument("--checkpoint", help="a checkpoint file (overrides --out)")
    p.add_argument(
        "--arch",
        choices=models.ARCHS,
        default="gpt2",
        help="whose default run "
        "directory to read (the checkpoint itself says which model it holds)",
    )
    p.add_argument(
        "--mlp",
        choices=models.MLPS,
        help="with --arch modern: moe reads the "
        "default run directory of `make train ARCH=modern MLP=moe`",
    )
    p.add_argument(
        "--tokenizer",
        choices=("char", "bpe"),
        default="char",
        help="bpe reads "
        "the default run directory of `make train TOKENIZER=bpe` (the checkpoint "
        "holds its tokenizer)",
    )
    p.add_argument("--prompt", default="\\n", help="text to continue (default: a newline)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = always the most likely")
    p.add_argument(
        "--top-k", type=top_k, default=40, help="keep the k most likely (all: no top-k filter)"
    )
    p.add_argument(
        "--top-p",
        type=float,
        default=None,
        help="keep the smallest set with this much probability (nucleus sampling)",
    )
    p.add_argument(
        "--n-tokens",
        type=int,
        default=500,
        help="tokens to generate (characters, or BPE tokens of a few characters each)",
    )
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument(
        "--show-top",
        type=int,
        default=0,
        help="print the N most likely next characters at every step",
    )
    p.add_argument("--device", help="cuda, mps or cpu (default: the fastest there is)")
    return p.parse_args(argv)


def top_k(text: str) -> int | None:
    """TOP_K: a whole number of characters to keep, or "all" (None: no filter)."""
    return None if text.strip().lower() in ("all", "none") else int(text)


def validate_settings(args: argparse.Namespace) -> None:
    """Every sampling setting, checked before the model loads; one line for the first bad one."""
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        refuse(
            f"TEMPERATURE={args.temperature} cannot be used: give 0 (always the likeliest) "
            "or more, such as 0.8"
        )
    if args.top_k is not None and args.top_k < 1:
        refuse(
            f"TOP_K={args.top_k} would keep no character: give 1 or more, such as 40, or "
            "TOP_K=all for no top-k filter"
        )
    if args.top_p is not None and not 0 < args.top_p <= 1:
        refuse(
            f"TOP_P={args.top_p} cannot be used: give a probability in (0, 1], such as 0.9 "
            "(1 keeps every character)"
        )
    for variable, value in (("N_TOKENS", args.n_tokens), ("SHOW_TOP", args.show_top)):
        if value < 0:
            refuse(f"{variable}={value} cannot be used: give 0 or more")
    if args.n_tokens > MAX_TOKENS:
        refuse(
            f"N_TOKENS={args.n_tokens} is more than {MAX_TOKENS:,} tokens (hours of text): "
            f"give at most {MAX_TOKENS}; the text is printed as it is made"
        )
    if args.mlp == "moe" and args.arch != "modern":
        refuse(
            "MLP=moe names the run of `make train ARCH=modern MLP=moe`: give ARCH=modern MLP=moe"
        )
    if args.device:
        check_device(args.device)


def shown(token: str) -> str:
    """A token (a character, or a BPE token's few) made visible: spaces as ␣, newlines as \\n."""
    return token.replace(" ", "␣").replace("\n", "\\n")


def sample_with_table(model, tokenizer, idx, args, generator) -> torch.Tensor:
    """Sample one character at a time and print the model's favourites at each step."""
    block_size = model.config.block_size
    print(
        f"{'step':>4}  {'chose':<6} top {args.show_top} (probability at temperature "
        f"{args.temperature:g})"
    )
    for step in range(args.n_tokens):
        logits, _ = model(idx[:, -block_size:])
        logits = logits[:, -1, :]
        probs = F.softmax(logits / args.temperature if args.temperature > 0 else logits, dim=-1)
        top = torch.topk(probs[0], min(args.show_top, probs.shape[-1]))
        nxt = sample_next(logits, args.temperature, args.top_k, args.top_p, generator)
        chosen = tokenizer.decode([int(nxt)])
        candidates = "  ".join(
            f"{shown(tokenizer.decode([int(i)])):>2} {float(p):.3f}"
            for p, i in zip(top.values, top.indices, strict=True)
        )
        print(f"{step:>4}  {shown(chosen):<6} {candidates}")
        idx = torch.cat([idx, nxt], dim=1)
    return idx


def stream(model, tokenizer, idx, args, generator) -> None:
    """Print the prompt, then the continuation as it is made, CHUNK tokens at a time (the
    same tokens as one call of generate: each step sees the last block_size tokens). A BPE
    token may end inside a character: its bytes wait for the next chunk."""
    print(tokenizer.decode(idx[0].tolist()), end="", flush=True)
    pending: list[int] = []
    left = args.n_tokens
    while left > 0:
        n = min(CHUNK, left)
        out = models.generate(
            model,
            idx,
            n,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            generator=generator,
        )
        ids = pending + out[0, idx.shape[1] :].tolist()
        idx = out[:, -model.config.block_size :]
        left -= n
        keep = next(
            (k for k in range(4) if not tokenizer.decode(ids[: len(ids) - k]).endswith("\ufffd")), 0
        )
        print(tokenizer.decode(ids[: len(ids) - keep]), end="", flush=True)
        pending = ids[len(ids) - keep :]
    print(tokenizer.decode(pending), flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    validate_settings(args)
    device = args.device or pick_device()
    if args.checkpoint:
        path = Path(args.checkpoint)
    else:
        preset = default_preset(torch.device(device).type)
        run = run_name(preset, args.arch, args.mlp, args.tokenizer)
        path = (Path(args.out) if args.out else ROOT / "runs" / run) / "best.pt"
    try:
        checkpoint = read_checkpoint(
            path, "Train again (make train), or point CHECKPOINT= at another checkpoint"
        )
    except FileNotFoundError as err:
        arch = (
            (" ARCH=modern" if args.arch == "modern" else "")
            + (" MLP=moe" if args.mlp == "moe" else "")
            + (" TOKENIZER=bpe" if args.tokenizer == "bpe" else "")
        )
        print(
            f"{err}\n(`make train{arch}` writes it; with `make sample OUT=dir` you choose the "
            "run directory)",
            file=sys.stderr,
        )
        return 2
    model, tokenizer = models.model_from_checkpoint(checkpoint, device)

    prompt = args.prompt.replace("\\n", "\n")
    try:
        ids = tokenizer.encode(prompt)
    except ValueError as err:
        known = "".join(tokenizer.chars)
        print(
            f"PROMPT {prompt!r}: {err}. This model knows only these characters: {known!r}",
            file=sys.stderr,
        )
        return 2
    if not ids:
        print("PROMPT is empty: give at least one character (\\n is a good start)", file=sys.stderr)
        return 2

    generator = torch.Generator(device=device).manual_seed(args.seed)
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.no_grad():
        try:
            if args.show_top > 0:
                out = sample_with_table(model, tokenizer, idx, args, generator)
                print(tokenizer.decode(out[0].tolist()))
            else:
                stream(model, tokenizer, idx, args, generator)
        except ValueError as err:  # the sampler's check of temperature / top-k / top-p
            print(f"\nbad sampling setting: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(harness.run_program(main))
