"""Kata 12 (reference): train the GPT on tiny Shakespeare, with checkpoints that resume exactly."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from gpt import GPT, GPTConfig
from schedules import clip_grad_norm, lr_at, param_groups
from tokenizer import CharTokenizer
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


class TrainingDiverged(FloatingPointError):
    """The loss or the gradient norm stopped being a finite number."""


@dataclass
class TrainConfig:
    """Everything about a training run except the model's shape (that is GPTConfig)."""

    batch_size: int = 64  # sequences per step, over all processes together
    max_steps: int = 5000
    lr: float = 1e-3  # the peak learning rate, reached after warmup
    min_lr: float = 1e-4  # where the cosine ends, at max_steps
    warmup_steps: int = 100
    weight_decay: float = 0.1  # on matrices only (kata 10's param_groups)
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250  # evaluate every this many steps (and at the last step)
    eval_iters: int = 20  # batches per split in each evaluation
    patience: int = 5  # stop after this many evaluations without a better val loss; 0: never
    seed: int = 1337
    out_dir: str = "runs/shakespeare"
    compile: bool = False  # torch.compile the model (CUDA)
    parallel: str = "ddp"  # several processes: "ddp" replicates the model, "fsdp" shards it
    optimizer: str = "adamw"  # or "muon": kata 18, Muon for hidden matrices (make_optimizer)


def pick_device() -> str:
    """The fastest device here: "cuda", then "mps" (Apple GPUs), then "cpu"."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def autocast(device: torch.device | str):
    """bf16 mixed precision on CUDA (matmuls in bf16, reductions in fp32); nothing elsewhere."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def split_data(text: str, tokenizer: CharTokenizer,
               val_fraction: float = 0.1) -> tuple[Tensor, Tensor]:
    """Encode text as one int64 tensor; the first (1 - val_fraction) trains, the rest validates."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    n_train = int(len(ids) * (1 - val_fraction))
    return ids[:n_train], ids[n_train:]


def get_batch(data: Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None,
              device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """batch_size random windows of block_size tokens (x) and the same windows one token on (y)."""
    n_starts = len(data) - block_size  # a window starting at s needs data[s + block_size] for y
    if n_starts < 1:
        raise ValueError(f"{len(data)} tokens cannot fill one window of block_size={block_size} "
                         f"plus the next token: use more data or a smaller block_size")
    starts = torch.randint(n_starts, (batch_size,), generator=generator)  # 0 .. n_starts-1
    positions = starts[:, None] + torch.arange(block_size)  # (batch_size, block_size)
    x, y = data[positions], data[positions + 1]
    return x.to(device), y.to(device)


@torch.no_grad()
def estimate_loss(model: nn.Module, splits: dict[str, Tensor], batch_size: int, block_size: int,
                  eval_iters: int, device: torch.device | str = "cpu",
                  seed: int = 0) -> dict[str, float]:
    """Mean loss over eval_iters batches of each split, in eval mode (no dropout).

    The batches come from a generator seeded with `seed`, so every evaluation sees the same
    batches and two evaluations differ only because the model did. Leaves the model training.
    """
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    losses = {}
    for name, data in splits.items():
        total = 0.0
        for _ in range(eval_iters):
            x, y = get_batch(data, batch_size, block_size, generator, device)
            with autocast(device):
                _, loss = model(x, y)
            total += loss.item()
        losses[name] = total / eval_iters
    model.train()
    return losses


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    """torch.save to a temporary file beside path, then rename it over path.

    The rename is atomic: whoever reads path (a resumed run, `make sample`) sees the old
    checkpoint or the new one, never half a file, even if this process dies mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:  # a file object: a full disk surfaces as its OSError
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())  # on the disk before the rename, not just in a buffer
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint onto the CPU. weights_only=True: tensors and plain data, no code runs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train first (make train), or point "
                                "at the run directory that holds it")
    return torch.load(path, map_location="cpu", weights_only=True)


def model_from_checkpoint(checkpoint: dict,
                          device: torch.device | str = "cpu") -> tuple[GPT, CharTokenizer]:
    """Rebuild the trained model (in eval mode) and its tokenizer from a checkpoint."""
    model = GPT(GPTConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), CharTokenizer.from_dict(checkpoint["tokenizer"])


# ---------------------------------------------------------------- a GPU's random numbers


def accelerator_rng(device: torch.device | str) -> dict[str, Tensor]:
    """{"cuda": state} or {"mps": state}: the RNG state dropout draws from on that GPU; {} on
    the CPU, whose state torch.get_rng_state() holds. Merge it into a checkpoint's "rng".
    Given: no spec can check code for a GPU on a machine without one."""
    device = torch.device(device)
    if device.type not in ("cuda", "mps"):
        return {}
    return {device.type: torch.get_device_module(device).get_rng_state(device)}


def restore_accelerator_rng(rng: dict, device: torch.device | str) -> None:
    """The other way: set the GPU's RNG state from a checkpoint's "rng" when it holds one for
    this kind of device (a run that moves from the CPU to a GPU has none to restore). Given."""
    device = torch.device(device)
    if device.type in ("cuda", "mps") and device.type in rng:
        torch.get_device_module(device).set_rng_state(rng[device.type], device)


# ---------------------------------------------------------------- sharded training (FSDP2)


def shard_model(model: nn.Module) -> nn.Module:
    """FSDP2: each process keeps 1/world of every parameter (fully_shard, in place) and
    gathers a block's weights only while that block runs. Call it before making the
    optimizer, which must hold the sharded parameters. Given; kata 16's lesson explains it."""
    from torch.distributed.fsdp import fully_shard

    for block in getattr(getattr(model, "transformer", None), "h", []):
        fully_shard(block)  # one all-gather per block, freed after its forward
    fully_shard(model)  # the rest: embeddings (tied to lm_head), final norm
    return model


NO_OPTIMIZER_STATE = {"state": {}, "param_groups": []}


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer,
               sharded: bool) -> tuple[dict, dict]:
    """(model, optimizer) state_dicts with whole tensors, as a checkpoint holds them.
    Sharded, every process must call this (it gathers); process 0 gets the tensors."""
    if not sharded:
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(model, options=options)
    if not optimizer.state:  # before the first step: get_optimizer_state_dict would take a
        return model_state, NO_OPTIMIZER_STATE  # zero step to make Adam's state, and count it
    return model_state, get_optimizer_state_dict(model, optimizer, options=options)


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, checkpoint: dict,
                    sharded: bool) -> None:
    """The other way: a checkpoint's whole tensors into a (maybe sharded) model and optimizer."""
    if not sharded:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, checkpoint["model"], options=options)
    if checkpoint["optimizer"]["state"]:
        set_optimizer_state_dict(model, optimizer, checkpoint["optimizer"], options=options)


OPTIMIZERS = ("adamw", "muon")


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device | str,
                   sharded: bool = False) -> torch.optim.Optimizer:
    """The optimizer cfg.optimizer names. Given; kata 18 explains Muon.

    "adamw": AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, cfg.beta2)).
    "muon": kata 18's muon_with_adamw: Muon for the hidden matrices, AdamW for embeddings,
    head, gains and biases, all at cfg.lr (Moonshot's shape scale lets one learning rate
    and one schedule serve both). Muon needs whole matrices, so not with FSDP. Kata 18 is
    imported only here, so that training with AdamW never needs it.
    """
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                                 betas=(0.9, cfg.beta2),
                                 fused=torch.device(device).type in ("cuda", "cpu"))
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"TrainConfig.optimizer must be one of {OPTIMIZERS}, got "
                         f"{cfg.optimizer!r}")
    if sharded:
        raise ValueError("optimizer='muon' orthogonalizes whole matrices, which FSDP shards: "
                         "train with DDP (parallel='ddp'), or with optimizer='adamw'")
    from muon import muon_with_adamw  # kata 18

    return muon_with_adamw(model, lr=cfg.lr, weight_decay=cfg.weight_decay,
                           betas=(0.9, cfg.beta2))


# ---------------------------------------------------------------- the training loop


def train(model: GPT, tokenizer: CharTokenizer, train_data: Tensor, val_data: Tensor,
          cfg: TrainConfig, device: torch.device | str = "cpu", resume: bool = False,
          should_stop: Callable[[int], bool] | None = None,
          log: Callable[[dict], None] | None = None) -> dict:
    """Train with AdamW (or cfg.optimizer), clipping and warmup-cosine; evaluate, keep the
    best, stop early.

    Writes out_dir/best.pt (best val loss so far) and out_dir/last.pt (for resuming) after
    each evaluation, and last.pt when stopping. A checkpoint holds "model", "model_config",
    "tokenizer", "optimizer", "train_config", "state" ({"step", "best_val", ...}) and "rng"
    (the batch generator's, torch's global and a GPU's RNG states). resume=True continues
    from last.pt exactly.
    should_stop(step) -> True ends the run cleanly at that step (Ctrl-C in scripts/train.py).
    log(event) receives {"kind": "start" | "step" | "eval", ...} dicts (process 0 only).
    Under torch.distributed every process runs this with the same arguments; each takes its
    share of every global batch (batch_size must divide evenly over them), and process 0
    writes the files. One process trains alone whatever cfg.parallel says.
    Returns {"step", "best_val", "best_step", "stopped": "max_steps" | "patience" | "asked"}.
    """
    device = torch.device(device)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} must divide evenly over {world} processes")
    block_size = model.config.block_size
    out_dir = Path(cfg.out_dir)
    log = log if log is not None and rank == 0 else (lambda event: None)
    should_stop = should_stop or (lambda step: False)

    model.to(device).train()
    sharded = world > 1 and cfg.parallel == "fsdp"
    if sharded:
        shard_model(model)  # before the optimizer: it must hold the sharded parameters
    optimizer = make_optimizer(model, cfg, device, sharded)
    # Two random streams: the batches (the same on every process: all draw the global batch
    # and keep their slice) and torch's global one (dropout, different on every process).
    batches = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed + rank)
    state = {"step": 0, "best_val": math.inf, "best_step": -1, "bad_evals": 0, "eval_step": -1}

    if resume:
        checkpoint = load_checkpoint(out_dir / "last.pt")
        if checkpoint["model_config"] != asdict(model.config):
            raise ValueError(f"{out_dir / 'last.pt'} holds a model of config "
                             f"{checkpoint['model_config']}, not {asdict(model.config)}: resume "
                             "with the same preset, or train into a new out dir")
        load_full_state(model, optimizer, checkpoint, sharded)
        state = checkpoint["state"]
        batches.set_state(checkpoint["rng"]["batches"])
        if rank == 0:  # the saved dropout stream is process 0's; the others keep their own
            torch.set_rng_state(checkpoint["rng"]["torch"])
            restore_accelerator_rng(checkpoint["rng"], device)

    def save(name: str) -> None:
        model_state, optimizer_state = full_state(model, optimizer, sharded)  # all processes
        if rank != 0:
            return
        rng = {"torch": torch.get_rng_state(), "batches": batches.get_state(),
               **accelerator_rng(device)}
        save_checkpoint(out_dir / name, {
            "model": model_state, "model_config": asdict(model.config),
            "tokenizer": tokenizer.to_dict(), "optimizer": optimizer_state,
            "train_config": asdict(cfg), "state": dict(state), "rng": rng,
        })

    def evaluate() -> bool:
        """Evaluate at the current step; save; True when patience has run out."""
        step = state["step"]
        losses = estimate_loss(model, {"train": train_data, "val": val_data}, cfg.batch_size,
                               block_size, cfg.eval_iters, device, seed=cfg.seed + 1)
        if world > 1:  # the processes' numbers could differ in the last bit: share one
            both = torch.tensor([losses["train"], losses["val"]], dtype=torch.float64,
                                device=device)
            dist.all_reduce(both)
            losses = {"train": both[0].item() / world, "val": both[1].item() / world}
        if not all(math.isfinite(v) for v in losses.values()):
            raise TrainingDiverged(f"eval loss at step {step} is {losses}: the model diverged; "
                                   "no checkpoint was written. Lower the learning rate.")
        improved = losses["val"] < state["best_val"]
        state["eval_step"] = step
        if improved:
            state.update(best_val=losses["val"], best_step=step, bad_evals=0)
            save("best.pt")
        else:
            state["bad_evals"] += 1
        save("last.pt")
        log({"kind": "eval", "step": step, "train_loss": losses["train"], "val_loss": losses["val"],
             "best_val": state["best_val"], "best_step": state["best_step"], "improved": improved})
        return cfg.patience > 0 and state["bad_evals"] >= cfg.patience

    step_model = torch.compile(model) if cfg.compile else model
    if world > 1 and not sharded:
        step_model = DistributedDataParallel(step_model)  # model and batches are on device
    mine = slice(rank * cfg.batch_size // world, (rank + 1) * cfg.batch_size // world)
    log({"kind": "start", "step": state["step"], "resumed": resume})

    stopped = "max_steps"
    while True:
        step = state["step"]
        at_eval = step % cfg.eval_interval == 0 or step == cfg.max_steps
        if at_eval and state["eval_step"] != step and evaluate():  # resumed runs skip a repeat
            stopped = "patience"
            break
        if step >= cfg.max_steps:
            break
        stop = should_stop(step)
        if world > 1:  # every process must stop at the same step
            flag = torch.tensor(float(stop), device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = flag.item() > 0
        if stop:
            stopped = "asked"
            save("last.pt")
            break

        started = time.perf_counter()
        lr = lr_at(step, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, cfg.batch_size, block_size, batches, device)
        with autocast(device):
            _, loss = step_model(x[mine], y[mine])
        loss.backward()
        grad_norm = clip_grad_norm(model.parameters(), cfg.grad_clip).item()
        loss_value = loss.item()
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            raise TrainingDiverged(
                f"loss {loss_value}, gradient norm {grad_norm} at step {step} (lr {lr:.3g}): "
                f"training diverged. Nothing was saved for this step: {out_dir / 'last.pt'} "
                "is the last good checkpoint. Lower the learning rate or lengthen the warmup.")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] = step + 1
        elapsed = time.perf_counter() - started
        log({"kind": "step", "step": step + 1, "loss": loss_value, "lr": lr,
             "grad_norm": grad_norm, "tokens_per_s": cfg.batch_size * block_size / elapsed})

    return {"step": state["step"], "best_val": state["best_val"], "best_step": state["best_step"],
            "stopped": stopped}
