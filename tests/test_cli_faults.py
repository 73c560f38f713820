"""scripts/train.py and scripts/sample.py under faults and bad settings (issue 24): every
refusal is one line, never a traceback, with nothing written before the settings are checked;
a run loses nothing to a kill -9 or a full disk; one training at a time in a run directory.

Faults are made, not waited for: a kill -9 in the middle of a save and a disk that fills up
during one are injected by a launcher that patches kata 12's save (or the file it writes)
before running the script as `__main__`.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
TINY = [
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
]

# Runs a script as __main__ after `patch` (Python source) has run, with the reference katas.
LAUNCHER = """
import runpy, sys
sys.path.insert(0, {scripts!r})
import harness
harness.use("solutions")
{patch}
sys.argv = [{script!r}, *sys.argv[1:]]
runpy.run_path({script!r}, run_name="__main__")
"""


def _env() -> dict:
    env = dict(os.environ, GPT_KATAS_IMPL="solutions", GPT_KATAS_REF="", OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    return env


def run(
    script: str, *args: str, patch: str = "", env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    path = str(ROOT / "scripts" / script)
    if patch:
        code = LAUNCHER.format(
            scripts=str(ROOT / "scripts"), script=path, patch=textwrap.dedent(patch)
        )
        cmd = [sys.executable, "-c", code, *args]
    else:
        cmd = [sys.executable, path, *args]
    return subprocess.run(
        cmd, cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=timeout
    )


def one_line(done: subprocess.CompletedProcess, *words: str) -> str:
    """The run failed with exactly one line on stderr, no traceback, naming `words`."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, done.stdout[-1000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def files(where: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(where.iterdir())} if where.exists() else {}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shakespeare_path) -> Path:
    """A 4-step run of the tiny preset (evaluations at steps 0, 2 and 4)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    done = run("train.py", *TINY, "--steps", "4", "--out", str(out))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


@pytest.fixture
def copy(trained, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    (out / ".lock").unlink(missing_ok=True)
    return out


# --- one line, and nothing written, for settings that cannot work --------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_gpu_that_is_not_there_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    one_line(
        run("train.py", *TINY, "--device", "cuda", "--out", str(out)), "DEVICE=cuda", "no CUDA GPU"
    )
    assert not out.exists()
    one_line(run("sample.py", "--out", str(tmp_path), "--device", "cuda"), "DEVICE=cuda")


def test_an_unknown_device_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    one_line(
        run("train.py", *TINY, "--device", "gpu7", "--out", str(out)),
        "DEVICE=gpu7",
        "not a device torch knows",
    )
    assert not out.exists()
    one_line(run("sample.py", "--out", str(tmp_path), "--device", "gpu7"), "DEVICE=gpu7")


def test_a_batch_that_does_not_split_over_the_processes_is_one_line(tmp_path):
    """NPROC=2 checks the batch once, before the launcher starts any process: one line, no
    launcher traceback, nothing written."""
    out = tmp_path / "run"
    done = run("train.py", *TINY, "--nproc", "2", "--batch", "3", "--out", str(out))
    one_line(done, "BATCH=3", "2 processes")
    assert not out.exists()


def test_a_process_that_fails_under_nproc_is_its_one_line_without_the_launchers_report(
    tmp_path,
):
    """A refusal only the processes can make (here: a resumed run's own batch of 3, which does
    not split over 2) reaches the user as that process's one line, with its exit code 2."""
    out = tmp_path / "run"
    first = run("train.py", *TINY, "--batch", "3", "--steps", "2", "--out", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    done = run(
        "train.py",
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--steps",
        "4",
        "--nproc",
        "2",
        "--resume",
        "--out",
        str(out),
    )
    one_line(done, "BATCH=3", "2 processes")
    assert done.returncode == 2
    assert "ChildFailedError" not in done.stderr, done.stderr[-3000:]


@pytest.mark.parametrize(
    "change", [["--arch", "modern"], ["--preset", "cpu"]], ids=["arch", "preset"]
)
def test_resuming_with_another_model_is_one_line_and_keeps_config_json(copy, change):
    before = files(copy)
    args = [*TINY, "--steps", "6", "--out", str(copy), "--resume"]
    if change[0] == "--preset":
        args[args.index("--preset") + 1] = change[1]
    else:
        args += change
    one_line(run("train.py", *args), "cannot resume", "another model")
    assert files(copy) == before, "a refused resume must not change the run's files"


def test_a_checkpoint_of_random_bytes_is_one_line_on_resume_and_on_sample(copy):
    # Random bytes fail to load in many ways: these two make torch.load raise IndexError
    # and KeyError (found by trying seeds; most others give an UnpicklingError).
    (copy / "last.pt").write_bytes(random.Random(2).randbytes(4096))
    (copy / "best.pt").write_bytes(random.Random(20).randbytes(4096))
    before = files(copy)
    one_line(
        run("train.py", *TINY, "--steps", "6", "--out", str(copy), "--resume"), "last.pt is damaged"
    )
    assert files(copy) == before
    one_line(run("sample.py", "--out", str(copy)), "best.pt is damaged")
    one_line(run("sample.py", "--checkpoint", str(copy / "last.pt")), "last.pt is damaged")


# --- bounds ----------------------------------------------------------------------------------


def test_an_absurd_number_of_tokens_is_refused_before_the_model_loads(trained):
    one_line(
        run("sample.py", "--out", str(trained), "--n-tokens", str(10**12)),
        "N_TOKENS=1000000000000",
        "at most",
    )


def test_a_long_sample_streams_as_it_is_made(trained):
    """The first characters of a million-token sample appear within seconds (before, nothing
    was printed until the end); then the sampler is stopped."""
    import select

    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "sample.py"),
            "--out",
            str(trained),
            "--n-tokens",
            "1000000",
            "--prompt",
            "AB",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    seen, deadline = b"", time.monotonic() + 120
    try:
        while len(seen) < 300 and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
    finally:
        proc.kill()
        proc.wait()
    assert seen.startswith(b"AB") and len(seen) >= 300, seen[:100]


def test_sampling_streams_and_gives_the_tokens_asked_for(trained):
    done = run(
        "sample.py", "--out", str(trained), "--n-tokens", "600", "--prompt", "AB", "--seed", "5"
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout.removesuffix("\n")
    assert text.startswith("AB") and len(text) == 602, (len(text), text[:80])
    again = run(
        "sample.py", "--out", str(trained), "--n-tokens", "600", "--prompt", "AB", "--seed", "5"
    )
    assert again.stdout == done.stdout, "the same seed gives the same text"


def test_a_bpe_vocabulary_larger_than_the_text_allows_is_said(tmp_path):
    code = (
        "import sys; sys.path.insert(0, 'scripts'); import run_data\n"
        "tok = run_data.make_tokenizer('bpe', 'abcabcabd' * 20, 1000)\n"
        "print('vocabulary', tok.vocab_size)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stdout.splitlines() if "BPE_VOCAB=1000" in line]
    size = int(done.stdout.split("vocabulary")[-1])
    assert len(said) == 1 and f"the vocabulary is {size}" in said[0] and size < 1000, done.stdout


# --- one training at a time --------------------------------------------------------------------


def test_a_second_training_into_the_same_directory_refuses_naming_the_first(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nsys.path.insert(0, 'scripts')\n"
            "import harness\nharness.use('solutions')\nfrom pathlib import Path\n"
            f"from guards import claim_run_directory\nclaim_run_directory(Path({str(out)!r}))\n"
            "print('held', flush=True)\ntime.sleep(120)\n",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        line = one_line(
            run("train.py", *TINY, "--steps", "2", "--out", str(out)), "in use", f"pid {holder.pid}"
        )
        assert str(out) in line
        assert sorted(files(out)) == [".lock"], "the refused training wrote nothing"
    finally:
        holder.kill()
        holder.wait()
    # the holder died (kill -9): its lock is stale and simply taken over
    done = run("train.py", *TINY, "--steps", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "last.pt").is_file() and (out / ".lock").read_text().strip() != str(holder.pid)


# --- nothing lost: kill -9 and a full disk ---------------------------------------------------

DIE_IN_SAVE = """
import os
import shakespeare
from pathlib import Path

def save_and_die(path, checkpoint):  # half a temporary file, then a kill -9
    Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp").write_bytes(b"half")
    os.kill(os.getpid(), 9)

shakespeare.save_checkpoint = save_and_die
"""

DISK_FILLS = """
import errno
import torch

real_save = torch.save

class FillingUp:  # the file torch.save writes: the disk is full after a few bytes
    def __init__(self, f):
        self.f, self.written = f, 0

    def write(self, data):
        self.written += len(data)
        if self.written > 1000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

def full_disk_save(obj, f, *args, **kwargs):
    return real_save(obj, FillingUp(f) if hasattr(f, "write") else f, *args, **kwargs)

torch.save = full_disk_save
"""


def metrics_rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_a_kill_during_a_resumed_runs_save_loses_nothing(copy):
    history = metrics_rows(copy / "metrics.csv")
    last = (copy / "last.pt").read_bytes()
    done = run("train.py", *TINY, "--steps", "8", "--out", str(copy), "--resume", patch=DIE_IN_SAVE)
    assert done.returncode == -9, done.stderr[-2000:]
    now = metrics_rows(copy / "metrics.csv")
    assert now[: len(history)] == history, "the run's history in metrics.csv was lost"
    assert (copy / "last.pt").read_bytes() == last, "last.pt must be the last whole save"
    again = run("train.py", *TINY, "--steps", "8", "--out", str(copy), "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "partial checkpoint" in again.stdout
    rows = metrics_rows(copy / "metrics.csv")
    assert rows[: len(history)] == history and [r.split(",")[0] for r in rows].count("eval") == 5, (
        rows
    )  # steps 0, 2, 4 from the first run; 6 and 8 from the resumed one
    assert not list(copy.glob(".*.tmp"))


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_checkpoint(copy):
    last = (copy / "last.pt").read_bytes()
    history = metrics_rows(copy / "metrics.csv")
    done = run("train.py", *TINY, "--steps", "8", "--out", str(copy), "--resume", patch=DISK_FILLS)
    one_line(done, "the disk is full", "RESUME=1")
    assert done.returncode == 1
    assert (copy / "last.pt").read_bytes() == last
    assert metrics_rows(copy / "metrics.csv")[: len(history)] == history
    assert not list(copy.glob(".*.tmp")), "the partial save is removed"
