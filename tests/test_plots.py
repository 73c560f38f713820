"""The plots fit their data: `make ablate --quick`'s curves (val loss near 3, a few steps) and a
full run's (near 1.8) both land inside the y-axis, which leaves out only the untrained first
evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LIMITS = """
import json, sys
sys.path.insert(0, "bench")
import ablate
results = json.loads(sys.stdin.read())
ablate.plot(results, __import__("pathlib").Path(sys.argv[1]))
print(json.dumps(ablate.y_limits(results)))
"""


def curve(vals: list[float]) -> dict:
    return {"curve": [{"tokens": 100 * i, "val": v} for i, v in enumerate(vals)]}


def limits(results: dict, png: Path) -> tuple[float, float]:
    env = dict(os.environ, GPT_KATAS_IMPL="solutions", GPT_KATAS_REF="")
    done = subprocess.run(
        [sys.executable, "-c", LIMITS, str(png)],
        cwd=ROOT,
        env=env,
        input=json.dumps(results),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert png.read_bytes()[:4] == b"\x89PNG"
    return tuple(json.loads(done.stdout.splitlines()[-1]))


def test_the_ablation_plot_holds_a_quick_run_and_a_full_one(tmp_path):
    quick = {
        "arms": {
            "gpt2": {"best_val_mean": 3.9, "runs": [curve([4.2, 4.0, 3.9])]},
            "modern": {"best_val_mean": 3.7, "runs": [curve([4.2, 3.9, 3.7])]},
        }
    }
    low, high = limits(quick, tmp_path / "quick.png")
    assert low < 3.7 and high > 4.0, (low, high)  # the old fixed top of 2.6 showed nothing
    assert high < 4.2, "the untrained first evaluation is left out, not the curves"
    full = {
        "arms": {
            "gpt2": {
                "best_val_mean": 1.9,
                "runs": [curve([4.2, 2.5, 2.0, 1.9]), curve([4.2, 2.6, 2.1, 1.92])],
            }
        }
    }
    low, high = limits(full, tmp_path / "full.png")
    assert 1.8 < low < 1.9 and 2.6 < high < 2.8, (low, high)
