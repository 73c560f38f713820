"""Kata 12: train the GPT on tiny Shakespeare, with checkpoints that resume exactly.

Read katas/12_shakespeare/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=12` to check your work, then `make train IMPL=katas` to train with it.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)
import os  # noqa: F401
import time  # noqa: F401
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass  # noqa: F401
from pathlib import Path

import torch
import torch.distributed as dist  # noqa: F401
from gpt import GPT, GPTConfig  # noqa: F401
from schedules import clip_grad_norm, lr_at, param_groups  # noqa: F401
from tokenizer import CharTokenizer
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel  # noqa: F401

LESSON = "see katas/12_shakespeare/README.md"


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
    raise NotImplementedError(f"pick_device: ask cuda, then mps; {LESSON}")


def autocast(device: torch.device | str):
    """bf16 mixed precision on CUDA (matmuls in bf16, reductions in fp32); nothing elsewhere.

    Given: use it as `with autocast(device): logits, loss = model(x, y)`.
    """
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def split_data(text: str, tokenizer: CharTokenizer,
               val_fraction: float = 0.1) -> tuple[Tensor, Tensor]:
    """Encode text into one int64 tensor; return (train, val) = (first part, last part).

    The first int(len * (1 - val_fraction)) ids train, the rest validate, in order (no
    shuffling). A ValueError unless 0 < val_fraction < 1.
    """
    raise NotImplementedError(f"split_data: encode, make a long tensor, slice; {LESSON}")


def get_batch(data: Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None,
              device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """batch_size random windows x[i] = data[s : s+block_size], y[i] = data[s+1 : s+1+block_size].

    Each start s is drawn uniformly from every start that leaves room for y, using
    `generator` (a torch.Generator, or torch's global one when None). Returns two
    (batch_size, block_size) int64 tensors on `device`. A ValueError naming block_size when
    data is too short for even one window.
    """
    raise NotImplementedError(f"get_batch: torch.randint for the starts, then index; {LESSON}")


@torch.no_grad()
def estimate_loss(model: nn.Module, splits: dict[str, Tensor], batch_size: int, block_size: int,
                  eval_iters: int, device: torch.device | str = "cpu",
                  seed: int = 0) -> dict[str, float]:
    """{split name: mean loss over eval_iters batches of that split}, measured in eval mode.

    `model(x, y)` returns (logits, loss). Batches come from torch.Generator().manual_seed(seed),
    made here, so every evaluation sees the same batches. Leaves the model in training mode.
    """
    raise NotImplementedError(f"estimate_loss: eval(), average, train(); {LESSON}")


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    """Write `checkpoint` to path atomically: torch.save to a temporary file in the same
    directory, then os.replace it over path. Creates the directory; on failure the previous
    file at path is untouched and no temporary file is left behind."""
    raise NotImplementedError(f"save_checkpoint: temporary file, then os.replace; {LESSON}")


def load_checkpoint(path: str | Path) -> dict:
    """torch.load(path, map_location="cpu", weights_only=True). A missing file is a
    FileNotFoundError whose message says to run `make train`."""
    raise NotImplementedError(f"load_checkpoint: torch.load with weights_only=True; {LESSON}")


def model_from_checkpoint(checkpoint: dict,
                          device: torch.device | str = "cpu") -> tuple[GPT, CharTokenizer]:
    """(the trained GPT on device, in eval mode; its CharTokenizer), rebuilt from the
    checkpoint's "model_config", "model" and "tokenizer" entries."""
    raise NotImplementedError(f"model_from_checkpoint: GPTConfig(**...), load_state_dict; {LESSON}")


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
    """Train with AdamW, clipping and warmup-cosine; evaluate, keep the best, stop early.

    Windows are model.config.block_size tokens long; the model trains in training mode
    (model.train() first: it may come in eval mode). The lesson lists every step; in short:
    - The optimizer: make_optimizer(model, cfg, device, sharded) (given; by default
      AdamW(param_groups(model, cfg.weight_decay), betas=(0.9, cfg.beta2))); batches from
      torch.Generator().manual_seed(cfg.seed); torch.manual_seed(cfg.seed + rank) for dropout.
    - Evaluate at step 0, every cfg.eval_interval steps and at cfg.max_steps, never twice at
      the same step: estimate_loss(..., seed=cfg.seed + 1) on both splits. A strictly lower
      val loss is the new best: write out_dir/best.pt. Then write out_dir/last.pt. After
      cfg.patience evaluations in a row without a new best (patience > 0), stop.
    - Before each update at step s: if should_stop(s), write last.pt and stop. Otherwise
      set every group's lr to lr_at(s, ...), draw a batch, forward under autocast(device),
      backward, clip_grad_norm(..., cfg.grad_clip); a non-finite loss or norm raises
      TrainingDiverged (naming the step) before anything is updated or saved; then
      optimizer.step(), zero the grads, and the step count becomes s + 1.
    - A checkpoint is {"model", "model_config", "tokenizer", "optimizer", "train_config",
      "state", "rng"}: state_dicts, asdict(...) and tokenizer.to_dict() (plain data only),
      "state" is a dict with "step" (the next step to run) and your best/patience
      bookkeeping; "rng" a dict of the batch generator's state and torch's global RNG state
      (name them as you like, e.g. "batches" and "torch") and what accelerator_rng(device)
      returns (given; {} on the CPU).
    - resume=True loads out_dir/last.pt (FileNotFoundError when missing; a ValueError naming
      it when it holds another model_config) and restores all of that (a GPU's RNG with
      restore_accelerator_rng), so the run continues exactly as if it had never stopped.
    - log(event) gets {"kind": "start", "step", "resumed"}, then {"kind": "step", "step",
      "loss", "lr", "grad_norm", "tokens_per_s"} after each update and {"kind": "eval",
      "step", "train_loss", "val_loss", "best_val", "best_step", "improved"}.
    - Under torch.distributed (several processes), wrap the model in DistributedDataParallel;
      each process draws the same global batch and trains on its slice (a batch_size that
      does not divide evenly over the processes is a ValueError naming it); only process 0
      writes files and logs; all stop at the same step. With cfg.parallel == "fsdp",
      shard_model(model) before making the optimizer instead of DDP, and read and write
      checkpoints through full_state / load_full_state (given; kata 16 explains them).
      One process trains alone whatever cfg.parallel says.
    Returns {"step", "best_val", "best_step", "stopped": "max_steps" | "patience" | "asked"}.
    """
    raise NotImplementedError(f"train: the loop described in the lesson; {LESSON}")
