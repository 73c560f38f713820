"""Progress that suits the output: `make microgpt` into a log file (no terminal) prints a few
plain lines, not a progress bar's frames. (scripts/run_log.py's RunLog: tests/test_train_e2e.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_microgpt_without_a_terminal_prints_a_line_per_tenth_and_no_bar(names_path):
    env = dict(os.environ, GPT_KATAS_IMPL="solutions", GPT_KATAS_REF="", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "microgpt.py"), "--steps", "30", "--samples", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "\r" not in done.stdout + done.stderr and "it/s" not in done.stderr, (
        f"a progress bar went into the log:\n{done.stderr[-1000:]}"
    )
    progress = [line for line in done.stdout.splitlines() if line.startswith("  step ")]
    assert [line.split()[1] for line in progress] == [f"{n}/30:" for n in range(3, 31, 3)], (
        done.stdout
    )
    assert all("mean loss" in line and "left]" in line for line in progress), progress
