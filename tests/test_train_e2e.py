"""End-to-end checks of scripts/train.py and scripts/sample.py with the reference solutions:
a short run writes every output, sampling works and fails clearly, Ctrl-C saves and resumes,
and a 2-process DistributedDataParallel run (gloo, CPU) matches a single-process run."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# A tiny run: the "tiny" preset (0.4M parameters), 4 sequences a step, a few steps.
QUICK = [
    "--preset",
    "tiny",
    "--batch",
    "4",
    "--eval-interval",
    "2",
    "--eval-iters",
    "4",
    "--device",
    "cpu",
    "--seed",
    "3",
]


def _env() -> dict:
    env = dict(os.environ, GPT_KATAS_IMPL="solutions", GPT_KATAS_REF="", OMP_NUM_THREADS="1")
    env.pop("RANK", None)
    return env


def _run(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return done


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shakespeare_path) -> Path:
    out = tmp_path_factory.mktemp("run")
    done = _run("train.py", *QUICK, "--steps", "4", "--out", str(out), "--samples", "1")
    assert "sample 1" in done.stdout, done.stdout
    return out


def test_a_run_writes_its_outputs(run_dir):
    for name in ("best.pt", "last.pt", "metrics.csv", "loss.png", "config.json"):
        assert (run_dir / name).is_file(), f"{name} missing from {sorted(os.listdir(run_dir))}"
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("kind,step,elapsed_s,loss,val_loss,lr,grad_norm,tokens_per_s")
    assert [r.split(",")[0] for r in rows[1:]].count("eval") == 3  # steps 0, 2 and 4
    assert [r.split(",")[0] for r in rows[1:]].count("step") == 4
    last = torch.load(run_dir / "last.pt", weights_only=True)
    assert last["state"]["step"] == 4 and last["model_config"]["n_layer"] == 2
    assert len(last["tokenizer"]["chars"]) == 65


def test_a_short_run_keeps_the_presets_warmup_share_and_decays(run_dir):
    # tiny: 100 warmup steps of 2,000; STEPS=4 keeps that share (0 steps), not 4 of 4.
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["warmup_steps"] == 0, config["train"]
    lrs = [
        float(r.split(",")[5])
        for r in (run_dir / "metrics.csv").read_text().splitlines()[1:]
        if r.startswith("step")
    ]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < lrs[0], (
        f"the learning rate should decay over a short run, got {lrs}"
    )


def test_sample_continues_a_prompt_and_shows_the_top_candidates(run_dir):
    done = _run(
        "sample.py",
        "--out",
        str(run_dir),
        "--prompt",
        "ROMEO:",
        "--n-tokens",
        "3",
        "--show-top",
        "4",
        "--seed",
        "1",
    )
    lines = done.stdout.splitlines()
    table = [line for line in lines if line.strip()[:1].isdigit()]
    assert len(table) == 3, done.stdout  # one row per generated character
    assert all(len(line.split()) == 2 + 2 * 4 for line in table), done.stdout
    text = done.stdout.split(table[-1], 1)[1].strip("\n")  # the sample follows the table
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 3, done.stdout


def test_an_unknown_prompt_character_is_a_clear_error(run_dir):
    done = _run("sample.py", "--out", str(run_dir), "--prompt", "caf\u00e9", check=False)
    assert done.returncode == 2
    assert "'\u00e9' at position 3" in done.stderr and "knows only" in done.stderr


def test_sampling_without_a_checkpoint_says_what_to_do(tmp_path):
    done = _run("sample.py", "--out", str(tmp_path), check=False)
    assert done.returncode == 2 and "make train" in done.stderr


def test_ctrl_c_saves_and_resume_continues(tmp_path, shakespeare_path):
    args = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *QUICK,
        "--steps",
        "100000",
        "--eval-interval",
        "5",
        "--out",
        str(tmp_path),
        "--samples",
        "0",
    ]
    proc = subprocess.Popen(
        args, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in proc.stdout:  # wait until training runs: the step-5 evaluation line
            if line.startswith("step     5:"):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, (
        f"Ctrl-C exits 130 after saving, got {proc.returncode}:\n" + err[-3000:]
    )
    assert "interrupted at step" in out and "RESUME=1" in out, out
    hint = out.split("continue with: ")[1].splitlines()[0]
    for setting in ("RESUME=1", f"OUT={tmp_path}", "STEPS=100000", "BATCH=4", "SEED=3"):
        assert setting in hint.split(), f"the hint drops {setting}: {hint}"
    stopped_at = torch.load(tmp_path / "last.pt", weights_only=True)["state"]["step"]
    assert stopped_at >= 5
    done = _run(
        "train.py",
        *QUICK,
        "--steps",
        str(stopped_at + 2),
        "--eval-interval",
        "5",
        "--out",
        str(tmp_path),
        "--samples",
        "0",
        "--resume",
    )
    assert f"resumed at step {stopped_at}" in done.stdout, done.stdout
    assert f"max_steps 100000 -> {stopped_at + 2}" in done.stdout, done.stdout  # said, and kept:
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["changed_on_resume"] == [
        {"step": stopped_at, "max_steps": [100000, stopped_at + 2]}
    ], config
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["step"] == stopped_at + 2


# train.py and sample.py both name the default run directory with run_settings.run_name: each
# setting that changes what a run holds gets its own directory, and sample finds it.
SAME_DIRECTORY = """
import contextlib, io, json, sys
from pathlib import Path
sys.path.insert(0, "scripts")
import train, sample
train.ROOT = sample.ROOT = Path(sys.argv[1])
said = []
for flags in json.loads(sys.argv[2]):
    for script, args in ((train, ["--resume", "--preset", "cpu"]), (sample, [])):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = script.main(["--device", "cpu", *args, *flags])
            except SystemExit as exit:
                code = exit.code
        said.append([code, err.getvalue()])
print(json.dumps(said))
"""
DIRECTORIES = [
    ([], "cpu"),
    (["--arch", "modern"], "cpu-modern"),
    (["--arch", "modern", "--mlp", "moe"], "cpu-modern-moe"),
    (["--tokenizer", "bpe"], "cpu-bpe"),
    (["--arch", "modern", "--tokenizer", "bpe"], "cpu-modern-bpe"),
]


def test_each_kind_of_run_has_its_own_default_directory_and_sample_finds_it(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SAME_DIRECTORY,
            str(tmp_path),
            json.dumps([flags for flags, _ in DIRECTORIES]),
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    said = json.loads(done.stdout.splitlines()[-1])
    for i, (flags, name) in enumerate(DIRECTORIES):
        (trained, train_err), (sampled, sample_err) = said[2 * i], said[2 * i + 1]
        run = tmp_path / "runs" / name
        assert trained == 2 and f"no checkpoint at {run / 'last.pt'}" in train_err, (
            f"make train {flags} should use {run}: {train_err}"
        )
        assert sampled == 2 and f"no checkpoint at {run / 'best.pt'}" in sample_err, (
            f"make sample {flags} should read {run}, where make train {flags} writes: {sample_err}"
        )
    assert not (tmp_path / "runs").exists(), "a refused run writes nothing"


PLAIN_PROGRESS = """
import sys
from pathlib import Path
from types import SimpleNamespace
sys.path.insert(0, "scripts")
import run_log
log = run_log.RunLog(Path(sys.argv[1]), SimpleNamespace(max_steps=40))
log.every_s = float(sys.argv[2])
log({"kind": "start", "step": 0, "resumed": False})
for step in range(1, 41):
    log({"kind": "step", "step": step, "loss": 4.0 - step / 20, "lr": 1e-3, "grad_norm": 1.0,
         "tokens_per_s": 1000.0})
    if step % 20 == 0:
        log({"kind": "eval", "step": step, "train_loss": 3.0, "val_loss": 3.1, "improved": True})
log.close()
"""


@pytest.mark.parametrize("every_s", [0.0, 3600.0])
def test_without_a_terminal_progress_is_a_line_now_and_then_not_a_bar(tmp_path, every_s):
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_PROGRESS, str(tmp_path), str(every_s)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "\r" not in done.stdout + done.stderr, "a progress bar's frames went into a log"
    progress = [line for line in done.stdout.splitlines() if line.startswith("  step ")]
    evals = [line for line in done.stdout.splitlines() if line.startswith("step ")]
    assert len(evals) == 2, done.stdout
    if every_s == 0:  # a line at every step, each saying where the run is and how fast
        assert len(progress) == 40, done.stdout
        assert (
            progress[9].startswith("  step 10/40 (25%): loss 3.5000")
            and "tok/s" in progress[9]
            and "left]" in progress[9]
        ), progress[9]
    else:  # a run shorter than every_s: the eval lines alone
        assert progress == [], done.stdout


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    done = _run("train.py", *QUICK, "--steps", "2", "--out", str(tmp_path), "--resume", check=False)
    assert done.returncode == 2 and "no checkpoint" in done.stderr, done.stderr
    assert not (tmp_path / "metrics.csv").exists()


# Each bad setting or damaged file is refused before anything runs: many cases go through one
# Python process (one torch import), each calling the script's main() with its arguments.
REFUSALS = """
import contextlib, io, json, sys
sys.path.insert(0, "scripts")
import {script} as script
results = []
for args in json.loads(sys.stdin.read()):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = script.main(args)
        except SystemExit as exit:
            code = exit.code
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def _refusals(script: str, cases: list[list[str]]) -> list[tuple[int, str, str]]:
    done = subprocess.run(
        [sys.executable, "-c", REFUSALS.format(script=script)],
        cwd=ROOT,
        env=_env(),
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [tuple(r) for r in json.loads(done.stdout.splitlines()[-1])]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line:\n{err}"
    assert "Traceback" not in err and "weights_only=False" not in err, err
    return lines[0]


BAD_TRAINING = [
    ("--steps", "0", "STEPS=0"),
    ("--steps", "-3", "STEPS=-3"),
    ("--batch", "0", "BATCH=0"),
    ("--lr", "-1", "LR=-1"),
    ("--lr", "0", "LR=0"),
    ("--eval-interval", "0", "EVAL_INTERVAL=0"),
    ("--dropout", "1", "DROPOUT=1"),
    ("--patience", "-1", "PATIENCE=-1"),
    ("--eval-iters", "0", "--eval-iters=0"),
    ("--steps", "abc", "argument --steps: invalid int value: 'abc'"),
]
BAD_SAMPLING = [
    ("--top-k", "0", "TOP_K=0"),
    ("--top-p", "0", "TOP_P=0"),
    ("--top-p", "1.5", "TOP_P=1.5"),
    ("--temperature", "-1", "TEMPERATURE=-1"),
    ("--temperature", "nan", "TEMPERATURE=nan"),
    ("--n-tokens", "-1", "N_TOKENS=-1"),
    ("--top-k", "few", "argument --top-k: invalid top_k value: 'few'"),
]


def test_every_bad_setting_is_refused_in_one_line_before_anything_is_written(tmp_path):
    run = tmp_path / "run"
    results = _refusals(
        "train", [[*QUICK, flag, value, "--out", str(run)] for flag, value, _ in BAD_TRAINING]
    )
    for (code, _, err), (_, _, named) in zip(results, BAD_TRAINING, strict=True):
        assert code == 2 and _one_line(err).startswith(f"error: {named}"), err
    assert not run.exists()
    results = _refusals(
        "sample", [["--out", str(run), flag, value] for flag, value, _ in BAD_SAMPLING]
    )
    for (code, _, err), (_, _, named) in zip(results, BAD_SAMPLING, strict=True):
        assert code == 2 and _one_line(err).startswith(f"error: {named}"), err


def test_no_run_replaces_or_silently_changes_another(run_dir):
    before = {name: (run_dir / name).read_bytes() for name in ("best.pt", "last.pt")}
    new_run, finished, dropout = _refusals(
        "train",
        [
            [*QUICK, "--steps", "2", "--out", str(run_dir)],
            [*QUICK, "--out", str(run_dir), "--resume"],
            [*QUICK, "--out", str(run_dir), "--resume", "--steps", "9", "--dropout", "0.5"],
        ],
    )
    assert "already holds a run" in _one_line(new_run[2]) and "OVERWRITE=1" in new_run[2]
    assert "at step 4 already" in _one_line(finished[2]) and "STEPS above 4" in finished[2]
    assert "DROPOUT=0.5" in _one_line(dropout[2])
    assert all(code == 2 for code, _, _ in (new_run, finished, dropout))
    assert before == {name: (run_dir / name).read_bytes() for name in before}


def test_a_damaged_checkpoint_is_named_with_what_to_do(run_dir, tmp_path):
    whole = (run_dir / "best.pt").read_bytes()
    unsafe = tmp_path / "unsafe.pt"  # loading it in full would run code (argparse.Namespace)
    torch.save({"model": {}, "model_config": {}, "note": argparse.Namespace(a=1)}, unsafe)
    files = {"empty.pt": b"", "cut.pt": whole[: len(whole) // 2], "text.pt": b"not a model\n"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    names = [*files, "unsafe.pt"]
    results = _refusals("sample", [["--checkpoint", str(tmp_path / n)] for n in names])
    for name, (code, _, err) in zip(names, results, strict=True):
        line = _one_line(err)
        assert code == 2 and f"{tmp_path / name} is damaged" in line and "make train" in line
    assert "empty (0 bytes)" in results[0][2] and "could run code" in results[3][2]

    resumed = tmp_path / "run"
    resumed.mkdir()
    (resumed / "last.pt").write_bytes(whole[:1000])
    (resumed / ".last.pt.4242.tmp").write_bytes(whole[:10])  # left by a kill mid-save
    ((code, out, err),) = _refusals("train", [[*QUICK, "--out", str(resumed), "--resume"]])
    assert code == 2 and f"{resumed / 'last.pt'} is damaged" in _one_line(err)
    assert "best.pt" in err  # what to do: resume from the best evaluation
    assert not (resumed / ".last.pt.4242.tmp").exists() and "partial checkpoint" in out


def train_on_two_processes(*args: str) -> subprocess.CompletedProcess:
    """scripts/train.py --nproc 2 (make train NPROC=2): 2 gloo processes under torchrun's
    launcher; a failure shows what they said."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "--nproc", "2", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    # A worker's traceback, if any, is in stderr: show its start and its end.
    lines = done.stderr.splitlines()
    report = "\n".join(lines if len(lines) <= 120 else [*lines[:80], "[...]", *lines[-40:]])
    assert done.returncode == 0, (
        f"torchrun exited {done.returncode}:\n{report}\n--- stdout ---\n" + done.stdout[-1000:]
    )
    return done


@pytest.mark.slow
def test_ddp_on_two_processes_matches_one(tmp_path, shakespeare_path):
    # Same global batch (4 sequences): each of the 2 gloo processes trains on 2 of them and
    # DDP averages the gradients, which equals the gradient of the mean over all 4. Only the
    # order of floating-point sums differs.
    common = [*QUICK, "--steps", "4", "--samples", "0", "--patience", "0"]
    _run("train.py", *common, "--out", str(tmp_path / "single"))
    done = train_on_two_processes(*common, "--out", str(tmp_path / "ddp"))
    assert "x 2 processes" in done.stdout, done.stdout
    single = torch.load(tmp_path / "single" / "last.pt", weights_only=True)
    ddp = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert ddp["state"]["step"] == single["state"]["step"] == 4
    # Only the order of floating-point sums differs, so almost every weight agrees to float32
    # rounding. AdamW divides by sqrt(v): where a gradient is itself mostly rounding noise, a
    # different rounding can move that one weight by a share of the learning rate (up to 1e-5
    # here on some CPUs). Without the all-reduce, every weight would differ.
    diffs = torch.cat([(ddp["model"][k] - v).abs().flatten() for k, v in single["model"].items()])
    worst, share = diffs.max().item(), (diffs > 1e-6).float().mean().item()
    assert worst < 1e-4 and share < 1e-3, (
        f"DDP and single-process weights differ by up to {worst:.3g}, and {share:.2%} of them "
        "by more than 1e-6: expected float32 rounding only (the gradients averaged over the "
        "processes are the gradient of the whole batch)"
    )
    evals = [
        line.split(",")
        for line in (tmp_path / "ddp" / "metrics.csv").read_text().split()
        if line.startswith("eval")
    ]
    assert float(evals[-1][4]) < float(evals[0][4]), f"val loss did not fall: {evals}"


def test_a_gpus_random_numbers_are_saved_and_restored(monkeypatch):
    # No GPU here: a stand-in for torch.cuda / torch.mps records what the given helpers do.
    from shakespeare import accelerator_rng, restore_accelerator_rng

    restored = []

    class StandIn:
        @staticmethod
        def get_rng_state(device):
            return torch.tensor([7, int(device.index or 0)], dtype=torch.uint8)

        @staticmethod
        def set_rng_state(state, device):
            restored.append((state.tolist(), str(device)))

    monkeypatch.setattr(torch, "get_device_module", lambda device: StandIn)
    assert accelerator_rng("cpu") == {}
    saved = accelerator_rng("cuda:1")
    assert list(saved) == ["cuda"] and saved["cuda"].tolist() == [7, 1], saved
    restore_accelerator_rng({"torch": torch.get_rng_state(), **saved}, "cuda:1")
    restore_accelerator_rng(saved, "cpu")  # the CPU's state is torch.get_rng_state()'s
    restore_accelerator_rng(saved, "mps")  # no state saved for this kind of device
    assert restored == [([7, 1], "cuda:1")], restored
    assert list(accelerator_rng("mps")) == ["mps"]
