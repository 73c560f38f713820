"""Train the GPT on tiny Shakespeare: `make train`, or `python scripts/train.py --help`.

Runs the reference solutions (katas 02, 09-12) unless GPT_KATAS_IMPL=katas (`make train
IMPL=katas` trains your own code). A preset is a file in configs/; flags override it.

    python scripts/train.py                       # the preset for this machine
    python scripts/train.py --preset small --steps 2000 --lr 6e-4
    python scripts/train.py --resume              # continue runs/<preset>/last.pt exactly
    python scripts/train.py --overwrite           # start over in a directory that holds a run
    python scripts/train.py --arch modern         # kata 16's model at the same size
    python scripts/train.py --arch modern --mlp moe  # kata 19's experts, same active size
    python scripts/train.py --optim muon          # kata 18's Muon (AdamW for the rest)
    torchrun --nproc_per_node=4 scripts/train.py  # the same run, data-parallel on 4 GPUs
    torchrun --nproc_per_node=4 scripts/train.py --fsdp  # ... with the model sharded (FSDP2)

Writes to the run directory (runs/<preset>[-modern][-moe][-bpe], or --out): best.pt,
last.pt, metrics.csv, loss.png and config.json. Ctrl-C saves last.pt and exits with 130 (as
programs stopped by Ctrl-C do); a second Ctrl-C aborts. Every setting is checked before
anything is written; a run never replaces another run's checkpoints unless --overwrite says
so, and --resume continues a run with its own settings (the changes given are recorded). One
training at a time in a run directory (a second one refuses, naming the first one's pid);
every file is written whole or not at all (a temporary file renamed into place; metrics.csv
is appended to, and on resume rewritten that way with its rows up to the step resumed), so a
kill -9 loses nothing saved, and a full disk is one line.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402

harness.use(harness.program_impl())  # reads GPT_KATAS_REF too

import models  # noqa: E402  (scripts/models.py: gpt2 or modern)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from gpt import PRESETS  # noqa: E402
from guards import (  # noqa: E402  (scripts/guards.py: every check before a run starts)
    ArgumentParser,
    check_resume_model,
    claim_run_directory,
    given_settings,
    on_disk_errors,
    prepare_run_directory,
    read_checkpoint,
    refuse,
    validate_settings,
    verified_data,
    write_atomic,
)
from shakespeare import (  # noqa: E402
    OPTIMIZERS,
    TrainConfig,
    TrainingDiverged,
    load_checkpoint,
    pick_device,
    split_data,
    train,
)
from tokenizer import CharTokenizer  # noqa: E402

CONFIGS = ROOT / "configs"
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


def presets() -> list[str]:
    """The files in configs/ that make train can use (posttrain*.json are the track's)."""
    return sorted(p.stem for p in CONFIGS.glob("*.json") if not p.stem.startswith("posttrain"))


def default_preset(device: str) -> str:
    """A GPU trains the 10.7M-parameter model; a CPU a small one that finishes in minutes."""
    return "cpu" if device == "cpu" else "medium"


def run_name(
    preset: str, arch: str = "gpt2", mlp: str | None = None, tokenizer: str = "char"
) -> str:
    """The default run directory's name, runs/<preset>[-modern][-moe][-bpe]: a modern run
    never overwrites a GPT-2 one, an MoE run a dense one, nor a BPE run a character one.
    scripts/sample.py reads the same name from the same settings."""
    name = preset if arch == "gpt2" else f"{preset}-{arch}"
    name = f"{name}-moe" if mlp == "moe" else name
    return f"{name}-bpe" if tokenizer == "bpe" else name


def load_preset(name: str) -> tuple[dict, dict]:
    """(GPTConfig fields, TrainConfig fields) from configs/<name>.json."""
    path = CONFIGS / f"{name}.json"
    if not path.is_file() or name not in presets():
        raise SystemExit(
            f"no preset {name!r}: choose one of {', '.join(presets())} (files in {CONFIGS})"
        )
    config = json.loads(path.read_text())
    model = dict(config["model"])
    base = PRESETS[model.pop("preset")]  # a kata 09 preset, then the file's changes
    return asdict(replace(base, **model)), dict(config["train"])


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags every run of kata 12's trainer takes (scripts/train.py, scripts/base_train.py):
    how long and how fast to train, where, and what to do with a run already there.
    guards.validate_settings checks each of them."""
    p.add_argument("--steps", type=int, help="max_steps (the cosine ends there)")
    p.add_argument("--batch", type=int, help="sequences per step (over all GPUs together)")
    p.add_argument("--lr", type=float, help="peak learning rate (min_lr stays lr / 10)")
    p.add_argument("--dropout", type=float, help="dropout probability in the model")
    p.add_argument("--eval-interval", type=int, help="steps between evaluations")
    p.add_argument("--eval-iters", type=int, help="batches per split in each evaluation")
    p.add_argument(
        "--patience",
        type=int,
        help="evaluations without improvement before stopping (0: never stop early)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in a directory that holds one, replacing its checkpoints",
    )
    p.add_argument("--device", help="cuda, mps or cpu (default: the fastest there is)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    p.add_argument("--samples", type=int, default=2, help="samples printed at the end")


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--preset",
        help=f"one of the files in configs/ (default: medium on a GPU, "
        f"cpu on a CPU); known: {', '.join(presets())}",
    )
    add_run_flags(p)
    p.add_argument(
        "--arch",
        choices=models.ARCHS,
        default="gpt2",
        help="gpt2: kata 09's "
        "model; modern: kata 16's (RMSNorm, RoPE, SwiGLU, GQA, a window) at the "
        "preset's parameter count",
    )
    p.add_argument(
        "--mlp",
        choices=models.MLPS,
        help="with --arch modern: swiglu (the "
        "default), or moe: kata 19's mixture of experts at the same active "
        "parameter count",
    )
    p.add_argument("--n-expert", type=int, help="experts per MoE layer (default 8)")
    p.add_argument("--top-k", type=int, help="experts each token uses (default 2)")
    p.add_argument(
        "--fsdp",
        action="store_true",
        help="under torchrun, shard the model with "
        "FSDP2 (fully_shard) instead of replicating it with DDP",
    )
    p.add_argument(
        "--out",
        help="run directory (default: runs/<preset>, with -modern for "
        "--arch modern, -moe for --mlp moe, -bpe for --tokenizer bpe)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p.add_argument(
        "--optim",
        choices=OPTIMIZERS,
        help="adamw (the default), or muon: kata "
        "18's Muon for the hidden matrices and AdamW for the rest, at one lr",
    )
    p.add_argument(
        "--tokenizer",
        choices=("char", "bpe"),
        default="char",
        help="characters (kata 02) or byte-level BPE (kata 17)",
    )
    p.add_argument(
        "--bpe-vocab",
        type=int,
        default=256 + 512,
        help="BPE vocabulary size, the 256 bytes included (default 768)",
    )
    return p.parse_args(argv)


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


def make_tokenizer(kind: str, text: str, bpe_vocab: int):
    """Characters (kata 02), or byte-level BPE (kata 17) learned from the train split only."""
    if kind == "char":
        return CharTokenizer(text)
    from bpe import BPETokenizer

    if bpe_vocab < 256:
        refuse(
            f"BPE_VOCAB={bpe_vocab}: a byte-level BPE vocabulary holds the 256 bytes and "
            "then the merges; give 256 or more (e.g. BPE_VOCAB=768)"
        )
    print(f"learning {bpe_vocab - 256} BPE merges from the train split...", flush=True)
    tokenizer = BPETokenizer.train(text[: int(len(text) * 0.9)], bpe_vocab)
    if tokenizer.vocab_size < bpe_vocab:
        print(
            f"BPE_VOCAB={bpe_vocab} is more than the train split allows: after "
            f"{tokenizer.vocab_size - 256} merges no pair of tokens occurs twice, so the "
            f"vocabulary is {tokenizer.vocab_size}",
            flush=True,
        )
    return tokenizer


def encode_splits(text: str, tokenizer):
    """Train and val ids: kata 12's split_data for characters; for BPE the text is split at
    90% of its characters first, as the merges were learned, and each side is encoded."""
    if isinstance(tokenizer, CharTokenizer):
        return split_data(text, tokenizer)
    n_train = int(len(text) * 0.9)
    return (
        torch.tensor(tokenizer.encode(text[:n_train]), dtype=torch.long),
        torch.tensor(tokenizer.encode(text[n_train:]), dtype=torch.long),
    )


def check_resume_tokenizer(last: Path, tokenizer) -> None:
    """A run resumes only with the tokenizer it was trained with."""
    saved = read_checkpoint(last, "Start over with OVERWRITE=1 (without RESUME)")["tokenizer"]
    if saved != tokenizer.to_dict():
        was = (
            f"TOKENIZER=bpe BPE_VOCAB={256 + len(saved['merges'])}"
            if saved.get("kind") == "bpe"
            else "TOKENIZER=char"
        )
        refuse(
            f"cannot resume {last}: it was trained with {was}; resume with the same "
            "setting, or train into a new OUT=dir"
        )


def print_samples(best: Path, device: str, count: int, seed: int) -> None:
    model, tokenizer = models.model_from_checkpoint(load_checkpoint(best), device)
    generator = torch.Generator(device=device).manual_seed(seed)
    start = torch.tensor([tokenizer.encode("\n")], dtype=torch.long, device=device)
    for i in range(count):
        out = models.generate(model, start, 400, temperature=0.8, top_k=40, generator=generator)
        print(f"--- sample {i + 1} (temperature 0.8, top-k 40) ---")
        print(tokenizer.decode(out[0].tolist()).strip("\n"))
    print("---\nmore: make sample (PROMPT=..., TEMPERATURE=..., TOP_K=..., SHOW_TOP=5)")


# ---------------------------------------------------------------- the seams of a run
# main() below is these steps in order; the post-training programs (scripts/base_train.py,
# scripts/chat_*.py) call the same ones.


@dataclass
class Runtime:
    """Where this process trains: the device, and its place among torchrun's processes."""

    device: str
    rank: int = 0
    distributed: bool = False

    @property
    def world(self) -> int:
        return dist.get_world_size() if self.distributed else 1


def start_runtime(args: argparse.Namespace) -> Runtime:
    """The device (--device, else the fastest), the process group under torchrun, threads."""
    distributed = "RANK" in os.environ  # started by torchrun
    device = args.device or pick_device()
    if distributed:
        local_rank = int(os.environ["LOCAL_RANK"])
        if device == "cuda":
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.device(device).type == "cuda":  # TF32 for what autocast leaves in fp32
        torch.set_float32_matmul_precision("high")
    return Runtime(device, int(os.environ.get("RANK", 0)), distributed)


def apply_flags(args: argparse.Namespace, train_fields: dict, model_fields: dict) -> None:
    """The flags given on the command line, over a config's settings (in place)."""
    overrides = {
        "max_steps": args.steps,
        "batch_size": args.batch,
        "lr": args.lr,
        "eval_interval": args.eval_interval,
        "eval_iters": args.eval_iters,
        "patience": args.patience,
        "seed": args.seed,
    }
    preset_steps = train_fields["max_steps"]
    train_fields.update({k: v for k, v in overrides.items() if v is not None})
    if args.lr is not None:
        train_fields["min_lr"] = args.lr / 10
    if train_fields["max_steps"] < preset_steps:
        # A shorter run keeps the preset's shape: warmup takes the same share of it, so the
        # learning rate still decays (STEPS=60 on `cpu`: 4 warmup steps, not all 60).
        share = train_fields["warmup_steps"] / preset_steps
        train_fields["warmup_steps"] = round(share * train_fields["max_steps"])
    if getattr(args, "compile", False):
        train_fields["compile"] = True
    if getattr(args, "fsdp", False):
        train_fields["parallel"] = "fsdp"
    if getattr(args, "optim", None):
        train_fields["optimizer"] = args.optim
    if args.dropout is not None:
        model_fields["dropout"] = args.dropout


def train_config(train_fields: dict, source: str) -> TrainConfig:
    """Kata 12's TrainConfig from a config file's settings; an unknown one is named."""
    unknown = set(train_fields) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise SystemExit(f"{source}: unknown train settings {sorted(unknown)}")
    return TrainConfig(**train_fields)


def settle_run(
    args: argparse.Namespace,
    out_dir: Path,
    train_fields: dict,
    model_fields: dict,
    source: str,
    runtime: Runtime,
) -> tuple[TrainConfig, list]:
    """The settings to train with, after the flags and the run directory's checks
    (guards.prepare_run_directory: no run replaced, a resumed run continued as it was)."""
    apply_flags(args, train_fields, model_fields)
    train_fields["out_dir"] = str(out_dir)
    return prepare_run_directory(
        args, out_dir, train_config(train_fields, source), model_fields, runtime.rank
    )


def shakespeare_data(args: argparse.Namespace, out_dir: Path):
    """(tokenizer, train ids, val ids) of tiny Shakespeare, with the tokenizer asked for."""
    text = verified_data("tinyshakespeare.txt").read_text()
    tokenizer = make_tokenizer(args.tokenizer, text, args.bpe_vocab)
    if args.resume:
        check_resume_tokenizer(out_dir / "last.pt", tokenizer)
    train_ids, val_ids = encode_splits(text, tokenizer)
    return tokenizer, train_ids, val_ids


def new_model(model_fields: dict, seed: int) -> torch.nn.Module:
    """The model to train, initialized from `seed`: the same weights on every process."""
    torch.manual_seed(seed)
    return models.build_model(model_fields)


def describe_run(
    name: str,
    runtime: Runtime,
    model,
    model_fields: dict,
    vocab_size: int,
    cfg: TrainConfig,
    out_dir: Path,
) -> str:
    """The line a run starts with: the model's size and shape, the training, the directory."""
    world = runtime.world
    return (
        f"{name} on {runtime.device}{f' x {world} processes' if world > 1 else ''}: "
        f"{model.num_params() / 1e6:.2f}M parameters ({models.describe(model)}"
        f"{model_fields['n_layer']} layers, {model_fields['n_head']} heads, "
        f"{model_fields['n_embd']} dims, block {model_fields['block_size']}, dropout "
        f"{model_fields['dropout']}, vocabulary {vocab_size}); batch {cfg.batch_size}, "
        f"lr {cfg.lr:g} -> {cfg.min_lr:g} after {cfg.warmup_steps} warmup steps, {cfg.max_steps} "
        f"steps; run directory {out_dir}"
    )


def write_run_config(out_dir: Path, record: dict) -> None:
    """config.json: everything that says how the run was made. The first file a run writes,
    once every setting is checked: the run directory is claimed first (one training at a
    time; guards.claim_run_directory)."""
    claim_run_directory(out_dir)
    write_atomic(
        out_dir / "config.json",
        json.dumps({**record, "impl": harness.program_impl()}, indent=2) + "\n",
    )


def run_training(
    model,
    tokenizer,
    train_ids,
    val_ids,
    cfg: TrainConfig,
    runtime: Runtime,
    resume: bool,
    log,
    title: str = "tiny Shakespeare",
) -> tuple[dict | None, int]:
    """Kata 12's train, with Ctrl-C as a clean stop (last.pt saved, exit code 130; a second
    Ctrl-C aborts) and a diverged run as one line. Returns (train's result or None, the exit
    code)."""
    interrupted = False

    def on_sigint(signum, frame):
        nonlocal interrupted
        interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts
        if runtime.rank == 0:
            print(
                "\nCtrl-C: finishing this step, saving last.pt (Ctrl-C again to abort)", flush=True
            )

    signal.signal(signal.SIGINT, on_sigint)
    code = 0
    try:
        result = train(
            model,
            tokenizer,
            train_ids,
            val_ids,
            cfg,
            runtime.device,
            resume=resume,
            should_stop=lambda step: interrupted,
            log=log,
        )
        if result["stopped"] == "asked":  # saved; then the shell's code for Ctrl-C (128 + 2)
            code = 130
        if runtime.distributed:  # no process tears down while process 0 still writes
            dist.barrier()
    except TrainingDiverged as err:
        print(f"\nstopped: {err}", file=sys.stderr, flush=True)
        result, code = None, 1
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if log:
            log.close()
        if runtime.distributed:
            dist.destroy_process_group()
    if runtime.rank == 0 and (Path(cfg.out_dir) / "metrics.csv").exists():
        out_dir = Path(cfg.out_dir)
        plot_losses(out_dir / "metrics.csv", out_dir / "loss.png", title)
    return result, code


def report_result(result: dict, out_dir: Path) -> None:
    """How the run ended, its best evaluation and where its files are."""
    how = {
        "max_steps": "reached max_steps",
        "patience": "stopped early (val stopped improving)",
        "asked": "interrupted",
    }[result["stopped"]]
    print(
        f"{how} at step {result['step']}: best val {result['best_val']:.4f} at step "
        f"{result['best_step']}; {out_dir / 'best.pt'}, loss curve {out_dir / 'loss.png'}"
    )


def check_moe_flags(args: argparse.Namespace) -> None:
    """MLP=moe needs ARCH=modern; N_EXPERT and TOP_K need MLP=moe and must fit together."""
    if args.mlp == "moe" and args.arch != "modern":
        refuse("MLP=moe replaces the modern model's MLPs: give ARCH=modern MLP=moe")
    if args.mlp != "moe" and (args.n_expert is not None or args.top_k is not None):
        refuse("N_EXPERT and TOP_K size a mixture of experts: give ARCH=modern MLP=moe too")
    n_expert = 8 if args.n_expert is None else args.n_expert
    top_k = 2 if args.top_k is None else args.top_k
    if args.mlp == "moe" and not 1 <= top_k <= n_expert:
        refuse(
            f"N_EXPERT={n_expert} TOP_K={top_k}: give N_EXPERT >= 1 and TOP_K from 1 to "
            "N_EXPERT (each token uses TOP_K of the N_EXPERT experts)"
        )


def moe_settings(args: argparse.Namespace) -> str:
    """MLP=moe and its sizes as given, for the hint that repeats a command."""
    given = [("MLP", args.mlp), ("N_EXPERT", args.n_expert), ("TOP_K", args.top_k)]
    return "".join(f" {name}={value}" for name, value in given if value is not None)


def tokenizer_settings(args: argparse.Namespace) -> str:
    """TOKENIZER=bpe and a BPE_VOCAB other than the default, for the hint that repeats a
    command (a run resumes only with its own tokenizer)."""
    if args.tokenizer != "bpe":
        return ""
    return " TOKENIZER=bpe" + (f" BPE_VOCAB={args.bpe_vocab}" if args.bpe_vocab != 768 else "")


def main(argv=None) -> int:
    args = parse_args(argv)
    validate_settings(args)
    if args.fsdp and "RANK" not in os.environ:
        print(
            "--fsdp (FSDP=1) shards the model over several processes: start them with "
            "torchrun (make train NPROC=2 FSDP=1)",
            file=sys.stderr,
        )
        return 2
    runtime = start_runtime(args)
    preset = args.preset or default_preset(torch.device(runtime.device).type)
    model_fields, train_fields = load_preset(preset)
    check_moe_flags(args)
    out_dir = Path(
        args.out or ROOT / "runs" / run_name(preset, args.arch, args.mlp, args.tokenizer)
    )
    cfg, resumes = settle_run(
        args, out_dir, train_fields, model_fields, f"configs/{preset}.json", runtime
    )
    if args.optim and cfg.optimizer != args.optim:  # a resumed run keeps its optimizer
        refuse(
            f"OPTIM={args.optim}: the run in {out_dir} trains with {cfg.optimizer}, whose "
            "state its checkpoints hold; resume it without OPTIM, or start a new run "
            "with OUT=dir"
        )

    tokenizer, train_ids, val_ids = shakespeare_data(args, out_dir)
    model_fields["vocab_size"] = tokenizer.vocab_size
    model_fields = models.model_fields(args.arch, model_fields, args.mlp, args.n_expert, args.top_k)
    if args.resume:  # another ARCH or PRESET: refused before config.json is written
        check_resume_model(out_dir / "last.pt", model_fields)
    model = new_model(model_fields, cfg.seed)

    log = None
    if runtime.rank == 0:
        write_run_config(
            out_dir,
            {
                "preset": preset,
                "model": model_fields,
                "train": asdict(cfg),
                **({"changed_on_resume": resumes} if resumes else {}),
            },
        )
        print(
            describe_run(
                f"preset {preset}", runtime, model, model_fields, tokenizer.vocab_size, cfg, out_dir
            ),
            flush=True,
        )
        log = RunLog(out_dir, cfg)
        log.note = lambda: models.expert_load_note(model)
    result, code = run_training(
        model, tokenizer, train_ids, val_ids, cfg, runtime, args.resume, log
    )
    if runtime.rank != 0 or result is None:
        return code
    report_result(result, out_dir)
    if result["stopped"] == "asked":
        print(
            f"continue with: make train RESUME=1{f' PRESET={preset}' if args.preset else ''}"
            f"{' ARCH=modern' if args.arch == 'modern' else ''}{moe_settings(args)}"
            f"{tokenizer_settings(args)}"
            f"{f' OUT={args.out}' if args.out else ''}{given_settings(args)}"
        )
    elif args.samples > 0 and (out_dir / "best.pt").exists():
        print_samples(out_dir / "best.pt", runtime.device, args.samples, cfg.seed)
    return code


def exit_without_teardown(code: int) -> None:
    """End a torchrun process without the interpreter's teardown. By now everything is saved
    and the process group is destroyed, yet torch's gloo backend can still abort in its C++
    destructors at exit ("terminate called without an active exception", about 3 CPU runs
    in 100), and torchrun would report that as a failed run."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    code = harness.run_program(on_disk_errors(main))
    if "RANK" in os.environ:
        exit_without_teardown(code)
    sys.exit(code)
