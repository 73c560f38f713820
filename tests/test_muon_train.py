"""Kata 18's Muon in the trainer: `make train OPTIM=muon` trains with Muon on the hidden
matrices and AdamW on the rest, its checkpoints hold Muon's state, a run stopped with Ctrl-C
and resumed ends bit for bit where an uninterrupted run ends, and `make sample` reads the
checkpoint. Runs scripts/train.py and scripts/sample.py with the reference solutions."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train_e2e import QUICK, ROOT, _env, _run  # noqa: E402  (one way to start them)

MUON = [*QUICK, "--optim", "muon", "--samples", "0", "--patience", "0"]  # the tiny preset


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_make_train_passes_optim_on():
    done = subprocess.run(
        ["make", "-n", "train", "OPTIM=muon"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    command = done.stdout[done.stdout.index("scripts/train.py") :]  # one command, over lines
    assert '--optim "$OPTIM"' in command, command


@pytest.fixture(scope="module")
def muon_run(tmp_path_factory, shakespeare_path) -> Path:
    out = tmp_path_factory.mktemp("muon")
    _run("train.py", *MUON, "--steps", "6", "--out", str(out))
    return out


def test_a_muon_checkpoint_holds_muon_state(muon_run):
    last = load(muon_run / "last.pt")
    assert last["train_config"]["optimizer"] == "muon" and last["state"]["step"] == 6
    groups = last["optimizer"]["param_groups"]
    muon = [g for g in groups if g["use_muon"]]
    assert len(muon) == 1 and muon[0]["adjust_lr_fn"] == "match_rms_adamw", groups
    # tiny preset: 2 layers x (c_attn, attn.c_proj, c_fc, mlp.c_proj) on Muon
    assert len(muon[0]["params"]) == 8, muon
    state = last["optimizer"]["state"]
    buffers = [state[i]["momentum_buffer"] for i in muon[0]["params"]]
    assert all(b.ndim == 2 and b.abs().sum() > 0 for b in buffers)
    adamw = [i for g in groups if not g["use_muon"] for i in g["params"]]
    assert all(state[i]["step"] == 6 for i in adamw), "the AdamW groups took 6 steps"
    config = (muon_run / "config.json").read_text()
    assert '"optimizer": "muon"' in config, config


def test_sample_reads_a_muon_checkpoint(muon_run):
    done = _run(
        "sample.py", "--out", str(muon_run), "--prompt", "ROMEO:", "--n-tokens", "5", "--seed", "1"
    )
    text = done.stdout.rstrip("\n")
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 5, done.stdout[-500:]


def test_ctrl_c_and_resume_end_where_an_uninterrupted_run_ends(muon_run, tmp_path):
    args = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *MUON,
        "--steps",
        "6",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.Popen(
        args, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in proc.stdout:  # stop once training runs: after the step-2 evaluation
            if line.startswith("step     2:"):
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode in (0, 130), err[-3000:]
    stopped_at = load(tmp_path / "last.pt")["state"]["step"]
    if stopped_at == 6:
        pytest.skip("the run finished before Ctrl-C reached it; nothing was resumed")
    assert proc.returncode == 130, f"Ctrl-C exits 130 after saving, got {proc.returncode}"
    done = _run("train.py", *MUON, "--steps", "6", "--out", str(tmp_path), "--resume")
    assert f"resumed at step {stopped_at}" in done.stdout, done.stdout
    straight, resumed = load(muon_run / "last.pt"), load(tmp_path / "last.pt")
    assert resumed["state"]["step"] == 6
    for name, weight in straight["model"].items():
        assert torch.equal(weight, resumed["model"][name]), (
            f"{name} differs after a stop at step {stopped_at} and a resume"
        )
    for i, state in straight["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(
                torch.as_tensor(value), torch.as_tensor(resumed["optimizer"]["state"][i][key])
            ), (i, key)


def test_resuming_with_another_optimizer_is_refused(muon_run, tmp_path):
    done = _run(
        "train.py",
        *MUON,
        "--steps",
        "8",
        "--out",
        str(muon_run),
        "--resume",
        "--optim",
        "adamw",
        check=False,
    )
    assert done.returncode == 2 and "OPTIM=adamw" in done.stderr, done.stderr
    assert load(muon_run / "last.pt")["state"]["step"] == 6  # nothing was written
