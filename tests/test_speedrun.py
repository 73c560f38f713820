"""`make speedrun` (scripts/speedrun.py): it stops at the first evaluation that reaches the
target and says when, or says in one line that the target was not reached. Tiny runs: the
figures themselves come from bench/speedrun_vs_nanogpt.py, never from a test."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--preset", "tiny", "--batch", "4", "--eval-interval", "2", "--eval-iters", "2",
        "--device", "cpu", "--seed", "3", "--samples", "0"]  # fmt: skip


def speedrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, GPT_KATAS_IMPL="solutions", GPT_KATAS_REF="", OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "speedrun.py"), *TINY,
         "--out", str(tmp_path / "run"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def evaluated_steps(run: Path) -> list[int]:
    with open(run / "metrics.csv", newline="") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row["kind"] == "eval"]


def test_the_speedrun_stops_at_the_first_evaluation_that_reaches_the_target(
    tmp_path, shakespeare_path
):
    # An untrained model's val loss is about ln 65 = 4.17, under 5: the evaluation at step 0
    # already reaches the target, so the run ends there.
    done = speedrun(tmp_path, "--steps", "8", "--target-val", "5")
    assert done.returncode == 0, f"expected exit 0, got {done.returncode}:\n{done.stderr[-2000:]}"
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("speedrun: val ") and "<= 5.0 at step 0," in last, (
        f"expected the last line to say the target was reached at step 0, got: {last!r}"
    )
    assert "s after the start" in last, f"expected the time since the start, got: {last!r}"
    steps = evaluated_steps(tmp_path / "run")
    assert steps == [0], f"expected the run to stop after its first evaluation, evaluated {steps}"


def test_a_target_not_reached_is_one_line_and_exit_1(tmp_path, shakespeare_path):
    done = speedrun(tmp_path, "--steps", "4", "--target-val", "0.01")
    assert done.returncode == 1, f"expected exit 1, got {done.returncode}:\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr, f"expected no traceback, got:\n{done.stderr[-2000:]}"
    last = done.stdout.strip().splitlines()[-1]
    assert "the target val <= 0.01 was not reached in 4 steps" in last, (
        f"expected one line saying the target was not reached in 4 steps, got: {last!r}"
    )
    assert evaluated_steps(tmp_path / "run")[-1] == 4, "expected the run to go to its last step"


@pytest.mark.parametrize(
    "flags, says",
    [(["--nproc", "2"], "one process"), (["--target-val", "nan"], "positive number"),
     (["--target-val", "-1"], "positive number")],
)  # fmt: skip
def test_a_bad_setting_is_refused_in_one_line(tmp_path, flags, says):
    done = speedrun(tmp_path, *flags)
    assert done.returncode == 2, f"expected exit 2, got {done.returncode}:\n{done.stdout[-1000:]}"
    said = (done.stdout + done.stderr).strip().splitlines()
    assert len(said) == 1 and says in said[0], f"expected one line that says {says!r}, got: {said}"
    assert not (tmp_path / "run").exists(), "expected nothing written before the refusal"


def test_another_lr_keeps_the_presets_share_for_min_lr(tmp_path):
    # configs/speedrun.json decays to lr / 100 (most presets: lr / 10); LR= keeps that share.
    done = speedrun(tmp_path, "--preset", "speedrun", "--lr", "2e-3", "--steps", "2")
    assert done.returncode in (0, 1), f"expected a run, got exit {done.returncode}:\n{done.stderr}"
    assert "lr 0.002 -> 2e-05" in done.stdout, (
        f"expected the cosine from 2e-3 down to 2e-5 (the preset's lr / 100), got:\n"
        f"{done.stdout[:600]}"
    )
