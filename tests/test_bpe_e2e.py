"""End-to-end checks of BPE in the programs, with the reference solutions: `make train
TOKENIZER=bpe` writes a checkpoint that carries the merges, `make sample` encodes the prompt
with them and decodes bytes back to text, and `make tokenizers QUICK=1` writes its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, GPT_KATAS_IMPL="solutions", GPT_KATAS_REF="", OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 or not check, (
        f"{args} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )
    return done


def test_train_and_sample_with_bpe(tmp_path, shakespeare_path):
    quick = [
        "scripts/train.py",
        "--preset",
        "tiny",
        "--batch",
        "4",
        "--eval-interval",
        "2",
        "--eval-iters",
        "2",
        "--device",
        "cpu",
        "--seed",
        "3",
        "--samples",
        "0",
        "--out",
        str(tmp_path),
    ]
    _run(*quick, "--steps", "2", "--tokenizer", "bpe", "--bpe-vocab", "300")
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert saved["tokenizer"]["kind"] == "bpe" and len(saved["tokenizer"]["merges"]) == 44
    assert saved["model_config"]["vocab_size"] == 300
    done = _run(
        "scripts/sample.py",
        "--out",
        str(tmp_path),
        "--prompt",
        "ROMEO:",
        "--n-tokens",
        "5",
        "--seed",
        "1",
    )
    assert done.stdout.startswith("ROMEO:"), done.stdout
    done = _run(*quick, "--steps", "4", "--resume", check=False)  # characters this time
    assert done.returncode != 0 and "TOKENIZER=bpe BPE_VOCAB=300" in done.stderr, done.stderr


def test_tokenizers_quick(tmp_path, shakespeare_path):
    _run("bench/tokenizers.py", "--quick", "--out", str(tmp_path))
    table = (tmp_path / "tokenizers.md").read_text()
    assert "bits/char" in table and table.count("| BPE ") == 2 and "| char |" in table
    assert (tmp_path / "tokenizers.png").read_bytes()[:4] == b"\x89PNG"
