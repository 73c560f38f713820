"""The text a run trains on: tiny Shakespeare, its tokenizer (characters, or byte-level BPE
learned from the train split) and its train and val ids; a resumed run keeps its tokenizer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402

harness.use(harness.program_impl())  # as train.py does: the chosen katas

import torch  # noqa: E402
from guards import read_checkpoint, refuse, verified_data  # noqa: E402
from shakespeare import split_data  # noqa: E402
from tokenizer import CharTokenizer  # noqa: E402


def make_tokenizer(kind: str, text: str, bpe_vocab: int):
    """Characters (kata 02), or byte-level BPE (kata 17) learned from the train split only."""
    if kind == "char":
        return CharTokenizer(text)
    from bpe import BPETokenizer

    if bpe_vocab < 256:
        refuse(
            f"BPE_VOCAB={bpe_vocab}: a byte-level BPE vocabulary holds the 256 bytes and "
            "then the merges; give 256 or more (e.g. BPE_VOCAB=768)"
        )
    print(f"learning {bpe_vocab - 256} BPE merges from the train split...", flush=True)
    tokenizer = BPETokenizer.train(text[: int(len(text) * 0.9)], bpe_vocab)
    if tokenizer.vocab_size < bpe_vocab:
        print(
            f"BPE_VOCAB={bpe_vocab} is more than the train split allows: after "
            f"{tokenizer.vocab_size - 256} merges no pair of tokens occurs twice, so the "
            f"vocabulary is {tokenizer.vocab_size}",
            flush=True,
        )
    return tokenizer


def encode_splits(text: str, tokenizer):
    """Train and val ids: kata 12's split_data for characters; for BPE the text is split at
    90% of its characters first, as the merges were learned, and each side is encoded."""
    if isinstance(tokenizer, CharTokenizer):
        return split_data(text, tokenizer)
    n_train = int(len(text) * 0.9)
    return (
        torch.tensor(tokenizer.encode(text[:n_train]), dtype=torch.long),
        torch.tensor(tokenizer.encode(text[n_train:]), dtype=torch.long),
    )


def check_resume_tokenizer(last: Path, tokenizer) -> None:
    """A run resumes only with the tokenizer it was trained with."""
    saved = read_checkpoint(last, "Start over with OVERWRITE=1 (without RESUME)")["tokenizer"]
    if saved != tokenizer.to_dict():
        was = (
            f"TOKENIZER=bpe BPE_VOCAB={256 + len(saved['merges'])}"
            if saved.get("kind") == "bpe"
            else "TOKENIZER=char"
        )
        refuse(
            f"cannot resume {last}: it was trained with {was}; resume with the same "
            "setting, or train into a new OUT=dir"
        )


def shakespeare_data(args: argparse.Namespace, out_dir: Path):
    """(tokenizer, train ids, val ids) of tiny Shakespeare, with the tokenizer asked for."""
    text = verified_data("tinyshakespeare.txt").read_text()
    tokenizer = make_tokenizer(args.tokenizer, text, args.bpe_vocab)
    if args.resume:
        check_resume_tokenizer(out_dir / "last.pt", tokenizer)
    train_ids, val_ids = encode_splits(text, tokenizer)
    return tokenizer, train_ids, val_ids
