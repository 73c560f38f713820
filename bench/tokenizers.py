"""The same GPT trained on characters and on byte-level BPE, compared in bits per character.

    python bench/tokenizers.py            # `make tokenizers`: about 10 minutes on 2 CPU cores
    python bench/tokenizers.py --quick    # a smoke test: seconds, numbers meaningless

A loss per token is not comparable across tokenizers (a BPE token carries several
characters), so every run is scored on the same validation text (the last 10% of tiny
Shakespeare, which no tokenizer learned from) in bits per character:
bpc = (mean loss per token in nats) / ln 2 / (characters per token).

Same compute means here: the same number of training CHARACTERS seen. Every run has the same
model shape (layers, heads, width), the same steps, batch, learning rate and schedule, and
windows that cover the same number of characters: block_size = WINDOW_CHARS / (characters
per token), rounded. Only the vocabulary (so the embedding and output layer) and how the text
is cut differ. Wall time is reported too: fewer tokens make BPE runs cheaper.

The val loss is measured over the WHOLE validation text, in consecutive windows (every token
predicted once), not on random batches. Writes bench/results/tokenizers.md (a table) and
bench/results/tokenizers.png. Runs kata 12's train() from solutions/ unless GPT_KATAS_IMPL says
otherwise. Nothing here asserts: it measures.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import harness  # noqa: E402

harness.use(harness.program_impl())

import torch  # noqa: E402
from bpe import BPETokenizer  # noqa: E402
from gpt import GPT, GPTConfig  # noqa: E402
from shakespeare import TrainConfig, train  # noqa: E402
from tokenizer import CharTokenizer  # noqa: E402

from harness.data import fetch  # noqa: E402

RESULTS = harness.results_dir()  # bench/results/ only with RECORD=1
# The cpu preset's model (configs/cpu.json), windows of 64 characters.
FULL = dict(
    n_layer=4,
    n_head=4,
    n_embd=128,
    window_chars=64,
    batch=12,
    steps=1500,
    vocabs=(256 + 512, 256 + 1024),
)
QUICK = dict(
    n_layer=1, n_head=2, n_embd=32, window_chars=32, batch=4, steps=10, vocabs=(256 + 16, 256 + 32)
)


@torch.no_grad()
def val_nats_per_token(model: GPT, ids: torch.Tensor, block_size: int) -> float:
    """Mean loss over every token of ids, in consecutive windows of block_size."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, block_size * 64):
        chunk = ids[start : start + block_size * 64 + 1]
        n = (len(chunk) - 1) // block_size * block_size
        if n == 0:
            break
        x = chunk[:n].view(-1, block_size)
        y = chunk[1 : n + 1].view(-1, block_size)
        logits, _ = model(x)
        total += torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"
        ).item()
        count += y.numel()
    return total / count


def run(name: str, tokenizer, train_text: str, val_text: str, cfg: dict, out: Path) -> dict:
    started = time.perf_counter()
    train_ids = torch.tensor(tokenizer.encode(train_text), dtype=torch.long)
    val_ids = torch.tensor(tokenizer.encode(val_text), dtype=torch.long)
    chars_per_token = len(val_text) / len(val_ids)
    block = max(4, round(cfg["window_chars"] / (len(train_text) / len(train_ids))))
    torch.manual_seed(1337)
    model = GPT(
        GPTConfig(
            vocab_size=tokenizer.vocab_size,
            block_size=block,
            n_layer=cfg["n_layer"],
            n_head=cfg["n_head"],
            n_embd=cfg["n_embd"],
            dropout=0.0,
        )
    )
    train_cfg = TrainConfig(
        batch_size=cfg["batch"],
        max_steps=cfg["steps"],
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=min(100, cfg["steps"]),
        eval_interval=cfg["steps"],
        eval_iters=2,
        patience=0,
        out_dir=str(out / name),
    )
    t0 = time.perf_counter()
    train(model, tokenizer, train_ids, val_ids, train_cfg, "cpu")
    train_seconds = time.perf_counter() - t0
    loss = val_nats_per_token(model, val_ids, block)
    row = dict(
        name=name,
        vocab=tokenizer.vocab_size,
        block=block,
        params=model.num_params(),
        loss=loss,
        chars_per_token=chars_per_token,
        bpc=loss / math.log(2) / chars_per_token,
        train_seconds=train_seconds,
        total_seconds=time.perf_counter() - started,
    )
    print(
        f"{name:>10}: vocab {row['vocab']:>5}, block {block:>3} tokens, val loss "
        f"{loss:.4f} nats/token, {chars_per_token:.3f} chars/token, bpc {row['bpc']:.4f} "
        f"[{train_seconds:.0f} s training]",
        flush=True,
    )
    return row


def table(rows: list[dict], cfg: dict, train_chars: int, machine: str) -> str:
    seen = cfg["steps"] * cfg["batch"] * cfg["window_chars"]
    lines = [
        f"Same model ({cfg['n_layer']} layers, {cfg['n_head']} heads, {cfg['n_embd']} "
        f"dims), same compute = the same training characters seen: {cfg['steps']:,} steps "
        f"x {cfg['batch']} windows x ~{cfg['window_chars']} characters = {seen:,} "
        f"characters ({seen / train_chars:.1f} passes over the train split). Scored on "
        f"the whole validation text (last 10%). `make tokenizers` reproduces it. "
        f"Measured on {machine}.",
        "",
        "| tokenizer | vocab | block (tokens) | parameters | val loss (nats/token) | "
        "chars/token | **bits/char** | training time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['vocab']:,} | {r['block']} | {r['params']:,} | "
            f"{r['loss']:.3f} | {r['chars_per_token']:.3f} | **{r['bpc']:.3f}** | "
            f"{r['train_seconds']:.0f} s |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = [r["name"] for r in rows]
    left.bar(names, [r["loss"] for r in rows], color="tab:gray")
    left.set_title("val loss per token (nats): not comparable")
    right.bar(names, [r["bpc"] for r in rows], color="tab:blue")
    right.set_title("bits per character: comparable")
    for ax, key in ((left, "loss"), (right, "bpc")):
        for i, r in enumerate(rows):
            ax.text(i, r[key], f"{r[key]:.3f}", ha="center", va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny models, a few steps: a smoke test")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the table and plot go")
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: torch's; 1 is "
        "faster on a machine busy with other work)",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = QUICK if args.quick else FULL
    if args.quick and args.out == RESULTS:
        args.out = harness.results_dir(quick=True)  # a smoke test never replaces measured results
    text = fetch.require("tinyshakespeare.txt").read_text()
    if args.quick:
        text = text[:50_000]
    n_train = int(len(text) * 0.9)
    train_text, val_text = text[:n_train], text[n_train:]
    machine = (
        f"{os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s), load "
        f"average {os.getloadavg()[0]:.1f} at the start"
    )
    print(f"{len(train_text):,} train / {len(val_text):,} val characters; {machine}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(run("char", CharTokenizer(text), train_text, val_text, cfg, Path(tmp)))
        for vocab in cfg["vocabs"]:
            t0 = time.perf_counter()
            tokenizer = BPETokenizer.train(train_text, vocab)
            print(f"BPE {vocab}: merges learned in {time.perf_counter() - t0:.1f} s", flush=True)
            rows.append(run(f"BPE {vocab}", tokenizer, train_text, val_text, cfg, Path(tmp)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tokenizers.md").write_text(table(rows, cfg, len(train_text), machine))
    plot(rows, args.out / "tokenizers.png")
    print(table(rows, cfg, len(train_text), machine))
    print(f"-> {args.out / 'tokenizers.md'}, {args.out / 'tokenizers.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(harness.run_program(main))
