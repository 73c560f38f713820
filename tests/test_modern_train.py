"""The modern model in the trainer (kata 16): `train.py --arch modern` trains and checkpoints
ModernGPT, `sample.py` rebuilds it from the checkpoint and writes past block_size through the
rolling cache, and FSDP2 on 2 gloo processes gives the single-process result."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train_e2e import QUICK, _run, train_on_two_processes  # noqa: E402  (one way to start them)

MODERN = [*QUICK, "--arch", "modern"]  # the tiny preset: block 128, 0.41M parameters


@pytest.fixture(scope="module")
def modern_run(tmp_path_factory, shakespeare_path) -> Path:
    out = tmp_path_factory.mktemp("modern")
    done = _run("train.py", *MODERN, "--steps", "2", "--out", str(out), "--samples", "0")
    assert "modern: rmsnorm, rope, swiglu" in done.stdout, done.stdout
    return out


def test_a_modern_checkpoint_says_which_model_it_holds(modern_run):
    checkpoint = torch.load(modern_run / "best.pt", weights_only=True)
    config = checkpoint["model_config"]
    assert (config["norm"], config["positions"], config["mlp"]) == ("rmsnorm", "rope", "swiglu")
    assert config["window"] == config["block_size"] == 128, config
    assert "transformer.wpe.weight" not in checkpoint["model"]
    assert "transformer.h.0.mlp.w2.weight" in checkpoint["model"]


def test_sample_writes_past_block_size_with_the_rolling_cache(modern_run):
    n = 300  # more than block_size = 128: only a rolling cache (or cropping) gets there
    done = _run(
        "sample.py",
        "--out",
        str(modern_run),
        "--prompt",
        "ROMEO:",
        "--n-tokens",
        str(n),
        "--seed",
        "1",
    )
    text = done.stdout.rstrip("\n")
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + n, done.stdout[-500:]


def test_resume_continues_a_modern_run(tmp_path, shakespeare_path):
    _run("train.py", *MODERN, "--steps", "2", "--out", str(tmp_path), "--samples", "0")
    done = _run(
        "train.py", *MODERN, "--steps", "4", "--out", str(tmp_path), "--samples", "0", "--resume"
    )
    assert "resumed at step 2" in done.stdout, done.stdout
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["step"] == 4


@pytest.mark.slow
def test_fsdp_on_two_processes_matches_one(tmp_path, shakespeare_path):
    # FSDP2 shards every weight and Adam's state over the 2 gloo processes; each trains on 2
    # of the 4 sequences and the gradients are reduce-scattered (averaged), so the update is
    # the single-process one up to the order of floating-point sums. After 4 AdamW steps the
    # weights agree to about 3e-7 on the reference; the bound is 1e-5.
    common = [*MODERN, "--steps", "4", "--samples", "0", "--patience", "0"]
    _run("train.py", *common, "--out", str(tmp_path / "single"))
    done = train_on_two_processes(*common, "--fsdp", "--out", str(tmp_path / "fsdp"))
    assert "x 2 processes" in done.stdout, done.stdout
    single = torch.load(tmp_path / "single" / "last.pt", weights_only=True)
    fsdp = torch.load(tmp_path / "fsdp" / "last.pt", weights_only=True)
    assert fsdp["state"]["step"] == single["state"]["step"] == 4
    assert set(fsdp["model"]) == set(single["model"]), "the FSDP checkpoint is not gathered whole"
    worst = max((fsdp["model"][k] - v).abs().max().item() for k, v in single["model"].items())
    assert worst < 1e-5, f"FSDP and single-process weights differ by up to {worst:.3g}"
    # The gathered checkpoint goes back into the shards: resume two more steps.
    done = train_on_two_processes(
        *MODERN,
        "--steps",
        "6",
        "--samples",
        "0",
        "--patience",
        "0",
        "--fsdp",
        "--resume",
        "--out",
        str(tmp_path / "fsdp"),
    )
    assert "resumed at step 4" in done.stdout, done.stdout[-1000:] + done.stderr[-3000:]
    assert torch.load(tmp_path / "fsdp" / "last.pt", weights_only=True)["state"]["step"] == 6
