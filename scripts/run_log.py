"""What a run writes while it trains (scripts/train.py, base_train.py, speedrun.py): the
progress bar (without a terminal, a progress line now and then), a line per evaluation,
metrics.csv (a row per step and per evaluation, appended to; read_metrics reads it back
without a row cut short) and the loss curve loss.png (plot_losses, written whole).
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402

harness.use(harness.program_impl())  # as train.py does: the chosen kata 12 (guards needs it)

from guards import write_atomic  # noqa: E402
from shakespeare import TrainConfig  # noqa: E402

METRIC_COLUMNS = [
    "kind",
    "step",
    "elapsed_s",
    "loss",
    "val_loss",
    "lr",
    "grad_norm",
    "tokens_per_s",
]


class RunLog:
    """The progress bar, the eval lines, and metrics.csv (one row per step and per eval).
    Without a terminal (a log file, CI) there is no bar: a progress line every `every_s`
    seconds between the eval lines says the step, the loss, the speed and the time left."""

    every_s = 10.0  # seconds between two progress lines without a terminal

    def __init__(self, out_dir: Path, cfg: TrainConfig):
        from tqdm import tqdm

        self.path = out_dir / "metrics.csv"
        self.plain = not sys.stderr.isatty()
        self.total = cfg.max_steps
        self.bar = tqdm(total=cfg.max_steps, unit="step", dynamic_ncols=True, disable=self.plain)
        self.said_at = 0.0  # when the last line was printed (perf_counter)
        self.first_step = 0  # the step this process started at
        self.file = None
        self.started = None  # set when training starts (on_start)
        self.elapsed_before = 0.0  # training time of the run this one resumes
        self.tokens_per_s = None
        self.note = lambda: ""  # more for the eval line (an MoE's expert load)

    def __call__(self, event: dict) -> None:
        getattr(self, "on_" + event["kind"])(event)

    def on_start(self, event: dict) -> None:
        self.started = time.perf_counter()
        rows = []
        if event["resumed"] and self.path.exists():  # keep history up to the resumed step
            rows = [r for r in read_metrics(self.path) if int(r["step"]) <= event["step"]]
            if rows:
                self.elapsed_before = float(rows[-1]["elapsed_s"])
        # The history is rewritten whole (a temporary file renamed over it), then appended
        # to: a kill -9 at any moment leaves every row written before.
        text = io.StringIO()
        writer = csv.DictWriter(text, METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.path, text.getvalue())
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, METRIC_COLUMNS)
        self.bar.reset()
        self.bar.update(event["step"])
        self.said_at, self.first_step = self.started, event["step"]
        if event["resumed"]:
            print(f"resumed at step {event['step']}", flush=True)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def on_step(self, event: dict) -> None:
        tps = event["tokens_per_s"]  # smoothed for display; every raw value goes to the file
        smooth = self.tokens_per_s
        self.tokens_per_s = tps if smooth is None else 0.9 * smooth + 0.1 * tps
        self.writer.writerow(
            {
                "kind": "step",
                "step": event["step"],
                "elapsed_s": f"{self.elapsed():.3f}",
                "loss": f"{event['loss']:.5f}",
                "lr": f"{event['lr']:.4g}",
                "grad_norm": f"{event['grad_norm']:.4f}",
                "tokens_per_s": f"{tps:.0f}",
            }
        )
        self.bar.set_postfix(
            loss=f"{event['loss']:.3f}",
            lr=f"{event['lr']:.2e}",
            tok_s=f"{self.tokens_per_s:,.0f}",
            refresh=False,
        )
        self.bar.update(1)
        if self.plain and time.perf_counter() - self.said_at >= self.every_s:
            self.say_progress(event)

    def say_progress(self, event: dict) -> None:
        """One progress line (instead of the bar's frames, which a log file would keep)."""
        now = time.perf_counter()
        self.said_at = now
        step, done = event["step"], event["step"] - self.first_step
        left = (self.total - step) * (now - self.started) / done if done > 0 else 0.0
        left_text = f"{left / 60:.0f} min" if left >= 120 else f"{left:.0f}s"
        print(
            f"  step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%): loss "
            f"{event['loss']:.4f}, lr {event['lr']:.2e}, {self.tokens_per_s:,.0f} tok/s "
            f"[{self.elapsed():.0f}s, about {left_text} left]",
            flush=True,
        )

    def on_eval(self, event: dict) -> None:
        self.writer.writerow(
            {
                "kind": "eval",
                "step": event["step"],
                "elapsed_s": f"{self.elapsed():.3f}",
                "loss": f"{event['train_loss']:.5f}",
                "val_loss": f"{event['val_loss']:.5f}",
            }
        )
        self.file.flush()
        speed = f", {self.tokens_per_s:,.0f} tok/s" if self.tokens_per_s else ""
        self.bar.write(
            f"step {event['step']:>5}: train {event['train_loss']:.4f}, val "
            f"{event['val_loss']:.4f}{' (best)' if event['improved'] else ''}"
            f" [{self.elapsed():.0f}s{speed}]{self.note()}"
        )
        sys.stdout.flush()
        self.said_at = time.perf_counter()

    def close(self) -> None:
        self.bar.close()
        if self.file:
            self.file.close()


def read_metrics(path: Path) -> list[dict]:
    """metrics.csv's rows, without a last row cut short by a kill (or any row that is not
    whole)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    whole = []
    for row in rows:
        try:
            int(row["step"]), float(row["elapsed_s"]), float(row["loss"])
        except (KeyError, TypeError, ValueError):
            continue
        whole.append(row)
    return whole


def plot_losses(metrics: Path, png: Path, title: str = "tiny Shakespeare") -> None:
    """Train and val loss at each evaluation, the raw batch losses faintly, the best marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics)
    steps = [r for r in rows if r["kind"] == "step"]
    evals = [r for r in rows if r["kind"] == "eval"]
    if not evals:
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    if steps:
        ax.plot(
            [int(r["step"]) for r in steps],
            [float(r["loss"]) for r in steps],
            color="tab:blue",
            alpha=0.2,
            linewidth=0.8,
            label="train (one batch)",
        )
    x = [int(r["step"]) for r in evals]
    ax.plot(x, [float(r["loss"]) for r in evals], "o-", color="tab:blue", label="train")
    ax.plot(x, [float(r["val_loss"]) for r in evals], "o-", color="tab:orange", label="val")
    best = min(evals, key=lambda r: float(r["val_loss"]))
    ax.axvline(int(best["step"]), color="gray", linestyle="--", linewidth=1)
    ax.plot(
        [int(best["step"])],
        [float(best["val_loss"])],
        "*",
        color="red",
        markersize=14,
        label=f"best val {float(best['val_loss']):.4f} at step {best['step']}",
    )
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(f"{title}: {png.parent.name}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png.with_name(f".{png.name}.{os.getpid()}.tmp")
    try:  # written whole, then renamed over the old one
        fig.savefig(tmp, dpi=120, format="png")
        os.replace(tmp, png)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
