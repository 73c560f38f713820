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
    python scripts/train.py --nproc 4             # the same run, data-parallel on 4 GPUs
    python scripts/train.py --nproc 4 --fsdp      # ... with the model sharded (FSDP2)

Writes to the run directory (runs/<preset>[-modern][-moe][-bpe], or --out): best.pt,
last.pt, metrics.csv, loss.png and config.json. Ctrl-C saves last.pt and exits with 130 (as
programs stopped by Ctrl-C do); a second Ctrl-C aborts. Every setting is checked before
anything is written; a run never replaces another run's checkpoints unless --overwrite says
so, and --resume continues a run with its own settings (the changes given are recorded). One
training at a time in a run directory (a second one refuses, naming the first one's pid);
every file is written whole or not at all (a temporary file renamed into place; metrics.csv
is appended to, and on resume rewritten that way with its rows up to the step resumed), so a
kill -9 loses nothing saved, and a full disk is one line.

This file holds the run's seams and main(); how a run's settings are chosen is
scripts/run_settings.py, the text and its tokenizer scripts/run_data.py, the device and
torchrun's processes scripts/processes.py, what a run writes while it trains
scripts/run_log.py, and every check before it starts scripts/guards.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402

harness.use(harness.program_impl())  # reads GPT_KATAS_REF too

import models  # noqa: E402  (scripts/models.py: gpt2 or modern)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from guards import (  # noqa: E402  (scripts/guards.py: every check before a run starts)
    ArgumentParser,
    check_resume_model,
    claim_run_directory,
    given_settings,
    on_disk_errors,
    prepare_run_directory,
    refuse,
    validate_settings,
    write_atomic,
)
from processes import Runtime, exit_without_teardown, launch, start_runtime, without_nproc  # noqa: E402
from run_data import shakespeare_data  # noqa: E402
from run_log import RunLog, plot_losses  # noqa: E402  (scripts/run_log.py: what a run writes)
from run_settings import (  # noqa: E402  (scripts/run_settings.py: presets and flags)
    add_run_flags,
    apply_flags,
    default_preset,
    load_preset,
    moe_settings,
    presets,
    run_name,
    tokenizer_settings,
    train_config,
)
from shakespeare import (  # noqa: E402
    OPTIMIZERS,
    TrainConfig,
    TrainingDiverged,
    load_checkpoint,
    pick_device,
    train,
)


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
        "--nproc",
        type=int,
        help="train on this many processes (torchrun's; DDP, or FSDP2 with --fsdp), "
        "after the settings are checked here once",
    )
    p.add_argument(
        "--fsdp",
        action="store_true",
        help="with --nproc (or under torchrun), shard the model with "
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
    on_eval: Callable[[dict], bool] | None = None,
) -> tuple[dict | None, int]:
    """Kata 12's train, with Ctrl-C as a clean stop (last.pt saved, exit code 130; a second
    Ctrl-C aborts) and a diverged run as one line. on_eval(event), given each evaluation's
    log event (process 0's), returns True to stop there as cleanly, with exit code 0
    (scripts/speedrun.py's target). Returns (train's result or None, the exit code)."""
    interrupted = stop_at_eval = False

    def on_event(event: dict) -> None:
        nonlocal stop_at_eval
        if log:
            log(event)
        if on_eval and event["kind"] == "eval" and on_eval(event):
            stop_at_eval = True

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
            should_stop=lambda step: interrupted or stop_at_eval,
            log=on_event,
        )
        if result["stopped"] == "asked" and not stop_at_eval:  # Ctrl-C, last.pt saved:
            code = 130  # the shell's code for Ctrl-C (128 + 2)
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


def preflight(args: argparse.Namespace) -> None:
    """Before --nproc starts its processes: the settings that every one of them would refuse,
    refused once (a resumed run's own batch is checked by the processes)."""
    device = args.device or pick_device()
    preset = args.preset or default_preset(torch.device(device).type)
    _, train_fields = load_preset(preset)
    check_moe_flags(args)
    batch = args.batch or train_fields["batch_size"]
    if batch % args.nproc:
        refuse(
            f"BATCH={batch} does not divide evenly over {args.nproc} processes: give a "
            f"multiple of {args.nproc}"
        )


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    validate_settings(args)
    distributed = "RANK" in os.environ  # started by torchrun
    if args.nproc is not None and not distributed:
        if args.nproc < 1:
            refuse(f"NPROC={args.nproc} cannot be used: give a number of processes, 1 or more")
        preflight(args)
        return launch(args.nproc, without_nproc(argv))
    if args.fsdp and not distributed:
        refuse("FSDP=1 shards the model over several processes: give NPROC=2 (or more) too")
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


if __name__ == "__main__":
    code = harness.run_program(on_disk_errors(main))
    if "RANK" in os.environ:
        exit_without_teardown(code)
    sys.exit(code)
