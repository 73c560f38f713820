"""End-to-end checks of the post-training track's programs with the reference solutions:
base -> SFT -> DPO and -> GRPO on a tiny setting (configs/posttrain-tiny.json, a few steps
each), every stage's files and held-out report, `chat_cli.py` through piped stdin, and the
one line a bad setting, a missing stage or an unencodable question gets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train_e2e import _env, _one_line, _refusals  # noqa: E402  (one way to start them)

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "--config",
    str(ROOT / "configs" / "posttrain-tiny.json"),
    "--device",
    "cpu",
    "--threads",
    "1",
]
# Every stage in one Python process (one torch import): main() of each, in order.
PIPELINE = """
import sys
sys.path.insert(0, "scripts")
import base_train, chat_sft, chat_dpo, chat_grpo
for stage in (base_train, chat_sft, chat_dpo, chat_grpo):
    code = stage.main(sys.argv[1:])
    assert code == 0, (stage.__name__, code)
"""


def _chat(out: Path, stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "chat_cli.py"),
            "--out",
            str(out),
            "--device",
            "cpu",
            *args,
        ],
        cwd=ROOT,
        env=_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def track(tmp_path_factory, names_path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("posttrain")
    done = subprocess.run(
        [sys.executable, "-c", PIPELINE, *TINY, "--out", str(out)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return out, done.stdout


def test_every_stage_writes_its_checkpoint_and_reports_held_out_accuracy(track):
    out, stdout = track
    for stage, name in (
        ("base", "best.pt"),
        ("sft", "model.pt"),
        ("dpo", "model.pt"),
        ("grpo", "model.pt"),
    ):
        assert (out / stage / name).is_file(), f"{stage}/{name} missing"
        record = json.loads((out / stage / "eval.json").read_text())
        scores = record["heldout_accuracy"]
        assert set(scores) == {"reverse", "count", "all"}, scores
        assert all(0.0 <= v <= 1.0 for v in scores.values()), scores
        assert record["eval_tasks"] == 4 and record["train_s"] >= 0, record
    assert stdout.count("held-out accuracy of") == 4, stdout
    assert (out / "grpo" / "reward.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "base" / "loss.png").is_file()
    rows = (out / "grpo" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,elapsed_s,lr,loss,reward") and len(rows) == 1 + 2, rows


def test_each_stage_starts_from_the_one_before(track):
    out, _ = track
    base = torch.load(out / "base" / "best.pt", weights_only=True)
    assert base["tokenizer"]["specials"][0] == "<|system|>"  # the vocabulary has them already
    assert base["model_config"]["vocab_size"] == 37 + 1 + 5  # ALPHABET, "\n", the specials
    for stage, before in (
        ("sft", "base/best.pt"),
        ("dpo", "sft/model.pt"),
        ("grpo", "sft/model.pt"),
    ):
        checkpoint = torch.load(out / stage / "model.pt", weights_only=True)
        assert checkpoint["stage"] == stage and checkpoint["started_from"] == str(out / before)


def test_chat_answers_piped_questions_and_exits(track):
    out, _ = track
    done = _chat(out, "reverse olivia\ncount a in anna\n")
    assert done.returncode == 0, done.stderr[-2000:]
    replies = [line for line in done.stdout.splitlines() if line.startswith("assistant> ")]
    assert len(replies) == 2, done.stdout  # one reply per line; the end of input leaves
    done = _chat(out, "reverse olivia\n\nreverse emma\n", "--stage", "sft")
    assert done.returncode == 0 and done.stdout.count("assistant> ") == 1, done.stdout


def test_chat_says_in_one_line_what_it_cannot_encode_and_goes_on(track):
    out, _ = track
    done = _chat(out, "Reverse olivia\nreverse olivia\n")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("cannot encode 'R' (position 0)") and "a-z" in lines[0], lines
    assert lines[1].startswith("assistant> ") and len(lines) == 2, lines
    assert "Traceback" not in done.stderr


def test_chat_without_a_model_names_the_make_target(tmp_path):
    done = _chat(tmp_path, "reverse olivia\n")
    assert done.returncode == 2 and "make posttrain" in _one_line(done.stderr), done.stderr
    done = _chat(tmp_path, "", "--stage", "dpo")
    assert done.returncode == 2 and "make posttrain-dpo" in _one_line(done.stderr)


BAD = [
    ("chat_sft", ["--steps", "0"], "STEPS=0"),
    ("chat_sft", ["--lr", "-1"], "LR=-1"),
    ("chat_sft", ["--eval-tasks", "1"], "EVAL_TASKS=1"),
    ("chat_dpo", ["--beta", "0"], "BETA=0"),
    ("chat_dpo", ["--pairs", "0"], "PAIRS=0"),
    ("chat_grpo", ["--group", "1"], "GROUP=1"),
    ("chat_grpo", ["--kl", "-0.1"], "KL=-0.1"),
    ("chat_grpo", ["--temperature", "0"], "TEMPERATURE=0"),
    ("chat_grpo", ["--clip", "1.5"], "CLIP=1.5"),
    ("chat_grpo", ["--aggregation", "mean"], "argument --aggregation: invalid choice"),
    ("base_train", ["--steps", "-2"], "STEPS=-2"),
    ("base_train", ["--batch", "x"], "argument --batch: invalid int value"),
]


def test_every_bad_setting_is_refused_in_one_line_before_anything_is_written(tmp_path):
    out = tmp_path / "track"
    for script in ("base_train", "chat_sft", "chat_dpo", "chat_grpo"):
        cases = [[*TINY, "--out", str(out), *args] for name, args, _ in BAD if name == script]
        results = _refusals(script, cases)
        named = [want for name, _, want in BAD if name == script]
        for (code, _, err), want in zip(results, named, strict=True):
            assert code == 2 and _one_line(err).startswith(f"error: {want}"), (script, err)
    assert not out.exists()


def test_a_stage_without_the_one_before_or_over_a_run_says_what_to_do(track, tmp_path):
    out, _ = track
    (missing,), (held,) = (
        _refusals("chat_grpo", [[*TINY, "--out", str(tmp_path)]]),
        _refusals("chat_sft", [[*TINY, "--out", str(out)]]),
    )
    assert missing[0] == 2 and "run `make posttrain-sft` first" in _one_line(missing[2])
    assert held[0] == 2 and "OVERWRITE=1" in _one_line(held[2])
