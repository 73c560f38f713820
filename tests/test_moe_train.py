"""Kata 19's mixture of experts in the trainer: `make train ARCH=modern MLP=moe` trains
MoEGPT (the auxiliary losses in its training loss, the expert load in the eval lines), its
checkpoint says which model it holds, `make sample` rebuilds it, and a run stopped and
resumed ends bit for bit where an uninterrupted run ends. Runs scripts/train.py and
scripts/sample.py with the reference solutions."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train_e2e import QUICK, ROOT, _env, _run  # noqa: E402  (one way to start them)

# The tiny preset (block 128) with 4 experts, top-2: 4 sequences a step, evaluations at 0, 2, 4.
MOE = [
    *QUICK,
    "--arch",
    "modern",
    "--mlp",
    "moe",
    "--n-expert",
    "4",
    "--top-k",
    "2",
    "--samples",
    "0",
    "--patience",
    "0",
]


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_make_train_passes_the_moe_settings_on():
    done = subprocess.run(
        ["make", "-n", "train", "ARCH=modern", "MLP=moe", "N_EXPERT=4", "TOP_K=1"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    command = done.stdout[done.stdout.index("scripts/train.py") :]  # one command, over lines
    for flag in ('--mlp "$MLP"', '--n-expert "$N_EXPERT"', '--top-k "$TOP_K"'):
        assert flag in command, command


@pytest.fixture(scope="module")
def moe_run(tmp_path_factory, shakespeare_path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("moe")
    done = _run("train.py", *MOE, "--steps", "4", "--out", str(out))
    return out, done.stdout


def test_the_run_says_what_it_trains_and_shows_the_expert_load(moe_run):
    _, stdout = moe_run
    assert "moe 4x swiglu(200) top-2" in stdout and "active per token" in stdout, stdout
    evals = [line for line in stdout.splitlines() if line.startswith("step ")]
    assert len(evals) == 3 and all("expert load" in line for line in evals), stdout
    shares = evals[-1].split("expert load ")[1].split(" (")[0].split()
    assert len(shares) == 4 and abs(sum(map(float, shares)) - 1) < 0.03, evals[-1]


def test_an_moe_checkpoint_says_which_model_it_holds(moe_run):
    out, _ = moe_run
    checkpoint = load(out / "best.pt")
    config = checkpoint["model_config"]
    assert (config["mlp"], config["n_expert"], config["top_k"]) == ("moe", 4, 2), config
    assert config["balance"] == "aux" and config["aux_alpha"] > 0, config
    state = checkpoint["model"]
    assert "transformer.h.0.mlp.router.weight" in state
    assert "transformer.h.1.mlp.experts.3.w2.weight" in state
    assert "transformer.h.0.mlp.expert_bias" in state, "the bias must travel with the weights"


def test_sample_reads_an_moe_checkpoint(moe_run):
    out, _ = moe_run
    done = _run(
        "sample.py", "--out", str(out), "--prompt", "ROMEO:", "--n-tokens", "200", "--seed", "1"
    )
    text = done.stdout.rstrip("\n")
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 200, done.stdout[-500:]


def stop_and_resume(command: list[str], out: Path, env: dict) -> int:
    """Start a 4-step run, Ctrl-C it after the step-2 evaluation, resume it to the end (the
    same STEPS, so the same schedule). Returns the step it stopped at."""
    proc = subprocess.Popen(
        [*command, "--steps", "4", "--out", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith("step     2:"):
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode in (0, 130), err[-3000:]
    stopped_at = load(out / "last.pt")["state"]["step"]
    if stopped_at == 4:
        pytest.skip("the run finished before Ctrl-C reached it; nothing was resumed")
    assert proc.returncode == 130, f"Ctrl-C exits 130 after saving, got {proc.returncode}"
    done = subprocess.run(
        [*command, "--steps", "4", "--out", str(out), "--resume"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"resumed at step {stopped_at}" in done.stdout, done.stdout
    return stopped_at


def test_a_resumed_run_ends_where_an_uninterrupted_run_ends(moe_run, tmp_path):
    out, _ = moe_run
    stop_and_resume([sys.executable, str(ROOT / "scripts" / "train.py"), *MOE], tmp_path, _env())
    straight, resumed = load(out / "last.pt"), load(tmp_path / "last.pt")
    assert resumed["state"]["step"] == straight["state"]["step"] == 4
    for name, weight in straight["model"].items():
        assert torch.equal(weight, resumed["model"][name]), f"{name} differs after a resume"


def test_bias_balancing_resumes_with_its_bias(tmp_path, shakespeare_path):
    # balance="bias" moves a buffer, not a parameter: a resumed run must carry it on. There
    # is no flag for it: this run's model_fields add it (the checkpoint records it).
    script = (
        "import sys, models; "
        "old = models.model_fields; "
        "models.model_fields = lambda *a, **k: {**old(*a, **k), 'balance': 'bias', "
        "'bias_gamma': 0.01}; import train; sys.exit(train.main(sys.argv[1:]))"
    )
    command = [sys.executable, "-c", script, *MOE]
    env = {**_env(), "PYTHONPATH": str(ROOT / "scripts")}
    straight, split = tmp_path / "straight", tmp_path / "split"
    done = subprocess.run(
        [*command, "--steps", "4", "--out", str(straight)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    stop_and_resume(command, split, env)
    a, b = load(straight / "last.pt"), load(split / "last.pt")
    bias = a["model"]["transformer.h.0.mlp.expert_bias"]
    assert a["model_config"]["balance"] == "bias" and bias.abs().sum() > 0, bias
    for name, weight in a["model"].items():
        assert torch.equal(weight, b["model"][name]), f"{name} differs after a resume"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--mlp", "moe"], "ARCH=modern MLP=moe"),
        (["--arch", "modern", "--top-k", "2"], "MLP=moe"),
        (["--arch", "modern", "--mlp", "moe", "--n-expert", "2", "--top-k", "3"], "TOP_K=3"),
    ],
)
def test_moe_settings_that_cannot_work_are_refused(args, message, tmp_path):
    done = _run("train.py", *QUICK, *args, "--steps", "2", "--out", str(tmp_path), check=False)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "config.json").exists()
