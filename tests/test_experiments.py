"""The experiments behind `make scaling` and `make ablate`: the power-law fit recovers known
parameters, and each experiment runs end to end in its quick mode (a handful of steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = {**os.environ, "GPT_KATAS_IMPL": "solutions", "GPT_KATAS_REF": ""}
sys.path.insert(0, str(ROOT / "bench"))
from fit import PowerLaw, fit_power_law  # noqa: E402


@pytest.mark.parametrize("E, A, alpha", [(1.5, 40.0, 0.35), (0.8, 3.0, 0.076), (2.2, 900.0, 0.6)])
def test_the_fit_recovers_a_known_law(E, A, alpha):
    x = np.geomspace(2e4, 8e5, 6)
    noise = np.random.default_rng(0).normal(0, 1e-4, x.size)
    law = fit_power_law(x, PowerLaw(E, A, alpha)(x) + noise)
    for name, want, got, tol in (
        ("E", E, law.E, 0.02),
        ("alpha", alpha, law.alpha, 0.05),
        ("A", A, law.A, 0.2),
    ):
        assert abs(got - want) <= tol * abs(want), (
            f"fit_power_law on points of {PowerLaw(E, A, alpha)}: {name} expected {want}, got "
            f"{got:.4g} ({law}); hint: check the starting guess and bounds given to curve_fit"
        )


def test_the_fit_refuses_too_few_points_with_a_reason():
    with pytest.raises(ValueError, match="need >= 3 points"):
        fit_power_law([1e4, 1e5], [2.0, 1.8])


def quick_run(experiment: str, tmp_path: Path) -> dict:
    """bench/<experiment>.py --quick on the CPU, its files in tmp_path: the results it wrote."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / f"{experiment}.py"),
            "--quick",
            "--device",
            "cpu",
            "--runs",
            str(tmp_path / "runs"),
            "--results",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=REFERENCE,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"bench/{experiment}.py --quick failed:\n{done.stderr[-3000:]}"
    return json.loads((tmp_path / f"{experiment}.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, keys",
    [
        ("scaling", ["models", "fit_N", "data", "fit_D"]),
        ("ablate", ["arms"]),
        ("muon", ["runs", "compare"]),
    ],
)
def test_the_experiment_runs_end_to_end_in_quick_mode(tmp_path, experiment, keys):
    results = quick_run(experiment, tmp_path)
    for key in keys:
        assert results.get(key), f"{experiment}.json has no {key!r}: {sorted(results)}"
    for suffix in ("md", "png"):
        assert (tmp_path / f"{experiment}.{suffix}").stat().st_size > 0


def test_the_loop_profile_splits_the_whole_run_into_its_phases(tmp_path):
    """bench/loop_profile.py --quick: every phase was seen, and the phases with the rest add up
    to the run's wall-clock time (no time counted twice)."""
    results = quick_run("loop_profile", tmp_path)
    seconds = results["seconds"]
    for phase in ("forward", "backward", "optimizer", "data", "evaluation", "checkpoints"):
        assert seconds[phase] > 0, f"no time was recorded for {phase!r}: {seconds}"
    assert sum(seconds.values()) == pytest.approx(results["wall_s"], abs=0.02), (
        f"the phases add up to {sum(seconds.values()):.2f} s, the run took "
        f"{results['wall_s']} s: a phase is counted twice or missed. {seconds}"
    )
    assert seconds["the rest"] >= 0, f"more time in the phases than in the run: {seconds}"


@pytest.mark.slow
def test_the_ablation_arms_have_matched_parameter_counts():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys; sys.path.insert(0, 'bench'); import ablate, dataclasses\n"
                "for device in ('cpu', 'cuda'):\n"
                "    size = ablate.settings(device, False)['size']\n"
                "    base = ablate.ModernConfig.gpt2(vocab_size=65, **size)\n"
                "    target = ablate.count(base)\n"
                "    for arm, change in ablate.arms(base.n_head, base.block_size).items():\n"
                "        n = ablate.count(*ablate.matched(dataclasses.replace(base, **change), target))\n"  # noqa: E501
                "        print(arm, n, target, abs(n - target) / target)\n"
            ),
        ],
        cwd=ROOT,
        env=REFERENCE,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in done.stdout.splitlines():
        arm, n, target, off = line.split()
        assert float(off) <= 0.02, (
            f"arm {arm}: {int(n):,} parameters against the baseline's {int(target):,} "
            f"({float(off):.1%} off; the experiment promises within 2%)"
        )
