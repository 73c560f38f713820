"""Where kata 12's training loop spends its time, measured with torch.profiler.

    python bench/loop_profile.py                 # the cpu preset's GPT-2, 300 steps
    python bench/loop_profile.py --arch modern --steps 200 --threads 2

Trains the preset's model (scripts/models.py, as `make train` builds it) with kata 12's
`train`, under torch.profiler, and splits the wall-clock time into what the model computes
and what the loop adds around it:
  forward      the model's forward in training steps
  backward     autograd's backward functions (loss.backward)
  optimizer    the optimizer's step and zero_grad
  clipping     clip_grad_norm and reading the norm back (.item())
  data         get_batch
  evaluation   estimate_loss, every eval_interval steps
  checkpoints  save_checkpoint (best.pt and last.pt after each evaluation)
  the rest     the loop's own Python: the learning-rate schedule, the log events, the checks
The loop can only be made faster by what it adds (data, clipping, checkpoints, the rest);
the model's forward, backward and optimizer are the same work in any trainer of this model.
The same run is timed once without the profiler first, for its cost.
Results: runs/bench/loop_profile.json (bench/results/ with RECORD=1). Nothing asserts.
"""

from __future__ import annotations

import copy
import functools
import sys
import tempfile
import time
from pathlib import Path

import experiments as ex
import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(ex.ROOT / "scripts"))
import models  # noqa: E402  (scripts/models.py: the model a preset and ARCH build)
import shakespeare  # noqa: E402  (kata 12, whose module functions the loop looks up per call)
from run_settings import load_preset  # noqa: E402

PHASES = ("forward", "backward", "optimizer", "clipping", "data", "evaluation", "checkpoints")


def labelled(label: str, function):
    """function, its every call recorded by the profiler as one event named label."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with record_function(label):
            return function(*args, **kwargs)

    return wrapper


def phase_of(name: str) -> str | None:
    if name in PHASES:
        return name
    if name.startswith("autograd::engine::evaluate_function"):
        return "backward"
    if name.startswith("Optimizer."):  # Optimizer.step#AdamW.step, Optimizer.zero_grad#...
        return "optimizer"
    return None


def profile_loop(model, cfg, data, device: str) -> dict:
    """Seconds per phase of one run of kata 12's train, and the wall-clock total; and the
    same run's wall-clock time without the profiler (which adds a cost to every operator)."""
    tokenizer, train_ids, val_ids = data
    started = time.perf_counter()
    shakespeare.train(copy.deepcopy(model), tokenizer, train_ids, val_ids, cfg, device)
    unprofiled = time.perf_counter() - started
    model.forward = labelled("forward", model.forward)  # inside "evaluation" it counts there
    patched = {
        "get_batch": "data",
        "estimate_loss": "evaluation",
        "save_checkpoint": "checkpoints",
        "clip_grad_norm": "clipping",
    }
    originals = {name: getattr(shakespeare, name) for name in patched}
    for name, label in patched.items():
        setattr(shakespeare, name, labelled(label, originals[name]))
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            started = time.perf_counter()
            shakespeare.train(model, tokenizer, train_ids, val_ids, cfg, device)
            wall = time.perf_counter() - started
    finally:
        for name, function in originals.items():
            setattr(shakespeare, name, function)
    seconds = dict.fromkeys(PHASES, 0.0)
    for event in prof.events():
        phase = phase_of(event.name)
        if phase is None or event.cpu_parent is not None and outermost_phase(event.cpu_parent):
            continue  # only the outermost event of a phase counts (no time counted twice)
        seconds[phase] += event.cpu_time_total / 1e6
    seconds["the rest"] = wall - sum(seconds.values())
    return {
        "wall_s": round(wall, 2),
        "wall_s_without_profiler": round(unprofiled, 2),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }


def outermost_phase(event) -> bool:
    """True when event, or an event around it, already belongs to a phase."""
    while event is not None:
        if phase_of(event.name) is not None:
            return True
        event = event.cpu_parent
    return False


def table(results: dict) -> str:
    s, m = results["settings"], results["machine"]
    lines = [
        f"# kata 12's loop, profiled ({m['device']}, {m['cpus']} cores, {m['date']}, load "
        f"average {m['load_average'][0]})",
        "",
        f"{s['arch']} model of preset {s['preset']}, {s['steps']} steps of {s['batch']} "
        f"sequences, an evaluation of {s['eval_iters']} batches every {s['eval_interval']} "
        f"steps, {m['torch_threads']} thread(s), under torch.profiler: "
        f"{results['wall_s']} s in all ({results['wall_s_without_profiler']} s for the same run "
        "without it: the profiler's cost per operator inflates forward and backward most).",
        "",
        "| phase | seconds | share |",
        "|---|---:|---:|",
    ]
    for phase, seconds in results["seconds"].items():
        lines.append(f"| {phase} | {seconds:.2f} | {100 * seconds / results['wall_s']:.1f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = ex.parser("loop_profile", __doc__)
    p.add_argument("--preset", default="cpu", help="a file in configs/ (default cpu)")
    p.add_argument("--arch", choices=models.ARCHS, default="gpt2")
    p.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    args = p.parse_args(argv)
    device, _, results_dir = ex.start(p, args)
    if args.steps < 1:
        p.error(f"--steps must be at least 1, got {args.steps}")
    steps = 4 if args.quick else args.steps
    model_fields, train_fields = load_preset(args.preset)
    data = ex.shakespeare()
    model_fields = models.model_fields(
        args.arch, {**model_fields, "vocab_size": data[0].vocab_size}
    )
    torch.manual_seed(1)
    model = models.build_model(model_fields)
    s = {
        "preset": args.preset,
        "arch": args.arch,
        "steps": steps,
        "batch": train_fields["batch_size"],
        "eval_interval": min(train_fields["eval_interval"], max(steps // 3, 1)),
        "eval_iters": train_fields["eval_iters"],
    }
    with tempfile.TemporaryDirectory() as out:
        cfg = ex.run_config(s, train_fields["lr"], 1, Path(out))
        results = {"machine": ex.machine(device), "settings": s}
        results |= profile_loop(model, cfg, data, device)
    ex.write_json(results_dir / "loop_profile.json", results)
    ex.write_atomically(results_dir / "loop_profile.md", table(results))
    print(table(results))
    print(f"written to {results_dir}/loop_profile.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(ex.harness.run_program(main))
