"""Tensor parallelism for kata 16's modern model: one model spread over several processes
(GPUs), each holding a slice of every attention and MLP matrix.

    torchrun --nproc_per_node=2 scripts/tensor_parallel.py            # TP=2 on 2 CPU processes
    torchrun --nproc_per_node=4 scripts/tensor_parallel.py --device cuda --preset medium

Data parallelism (DDP) copies the whole model to every process and splits the batch; FSDP2
(kata 12's shard_model) splits every parameter's storage but gathers each layer whole to run
it. Tensor parallelism (Megatron-LM's scheme, here with torch.distributed.tensor.parallel)
splits the COMPUTATION of each layer: every process sees the same batch and computes its own
share of the heads and of the MLP's hidden units.

  - Attention: the query, key and value projections are split by output rows, i.e. by heads
    (ColwiseParallel): with TP=2 and 4 query / 2 key-value heads, each process computes 2
    query heads and the 1 key-value head they share, attends, and holds (B, T, n_embd / 2).
    The output projection c_proj is split by input columns (RowwiseParallel): each process
    multiplies its half and one all-reduce sums the halves into the full (B, T, n_embd).
  - SwiGLU: w1 and w3 column-wise (each process has hidden / TP units of the gate and the
    up projection), w2 row-wise (one all-reduce). silu(w1 x) * w3 x is elementwise, so it
    needs no communication.
So a block costs two all-reduces forward (and two backward), and each process stores 1/TP
of the block's matrices. Embeddings, norms and the (tied) head stay whole on every process.

tensor_parallel(model, mesh) does it in place. Kata 15's attention keeps q, k and v in one
matrix (c_attn), whose rows a column-wise split would cut across q, k and v; so each
attention module is first replaced by HeadShardedAttention: the same weights as three
matrices, and a forward that reads its head counts from its (local) weights. The result is
the model's own computation up to float rounding (tests/test_tensor_parallel.py: 2 gloo
processes against one, loss and every gradient). With FSDP2, a 2-D mesh ("dp", "tp") would
shard over one dimension and split heads over the other (fully_shard(model,
mesh=mesh["dp"]) after tensor_parallel(model, mesh["tp"])); kata 12's train does not take a
mesh, so the trainer (make train NPROC=n) does data parallelism only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class HeadShardedAttention(nn.Module):
    """Kata 15's GroupedQueryAttention (training: no KV cache) with q, k and v as three
    matrices, so that a column-wise split of each is a split by heads. Its forward takes the
    number of heads from its weights: all of them on one process, 1/TP of them under TP."""

    def __init__(self, attn: nn.Module):
        super().__init__()
        C, hd, kv = attn.c_proj.out_features, attn.head_dim, attn.n_kv_head * attn.head_dim
        bias = attn.c_attn.bias is not None
        self.q, self.k, self.v = (
            nn.Linear(C, C, bias=bias),
            nn.Linear(C, kv, bias=bias),
            nn.Linear(C, kv, bias=bias),
        )
        with torch.no_grad():  # c_attn's rows are q, then k, then v
            for part, rows in zip((self.q, self.k, self.v), attn.c_attn.weight.split([C, kv, kv])):
                part.weight.copy_(rows)
            if bias:
                for part, b in zip((self.q, self.k, self.v), attn.c_attn.bias.split([C, kv, kv])):
                    part.bias.copy_(b)
        self.c_proj, self.resid_dropout = attn.c_proj, attn.resid_dropout
        self.head_dim, self.group = hd, attn.n_head // attn.n_kv_head
        self.window, self.rope, self.rope_base = attn.window, attn.rope, attn.rope_base
        self.dropout, self.qk_norm = attn.dropout, attn.qk_norm
        if attn.qk_norm:
            self.q_norm, self.k_norm = attn.q_norm, attn.k_norm

    def forward(
        self, x: Tensor, positions: Tensor | None = None, kv_cache=None, layer: int = 0
    ) -> Tensor:
        if kv_cache is not None:
            raise ValueError(
                "HeadShardedAttention trains (no kv_cache): generate with the "
                "model before tensor_parallel, or with its gathered weights"
            )
        from gqa import sliding_window_mask  # kata 15
        from rope import apply_rope  # kata 13

        B, T, _ = x.shape
        hd = self.head_dim
        q, k, v = self.q(x), self.k(x), self.v(x)  # (B, T, heads here * hd)
        H, KV = q.size(-1) // hd, k.size(-1) // hd
        q = q.view(B, T, H, hd).transpose(1, 2)
        k = k.view(B, T, KV, hd).transpose(1, 2)
        v = v.view(B, T, KV, hd).transpose(1, 2)
        if positions is None:
            positions = torch.arange(T, device=x.device)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:
            q, k = (
                apply_rope(q, positions, self.rope_base),
                apply_rope(k, positions, self.rope_base),
            )
        # The split keeps groups whole: this process's query head j uses its kv head j // group.
        k, v = k.repeat_interleave(self.group, dim=1), v.repeat_interleave(self.group, dim=1)
        dropout_p = self.dropout if self.training else 0.0
        if self.window is None or self.window >= T:  # the window covers the whole sequence
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            mask = sliding_window_mask(T, T, self.window, x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).reshape(B, T, H * hd)
        return self.resid_dropout(self.c_proj(y))


def tensor_parallel(model: nn.Module, mesh) -> nn.Module:
    """Split every block's attention (by heads) and MLP (by hidden units) over the processes
    of a 1-D DeviceMesh, in place; returns the model. Every process must call it, on the same
    weights (the same seed), and feed the same batches. Kata 16's ModernGPT with a SwiGLU or
    GELU MLP; n_head, n_kv_head and the MLP width must divide by the mesh size."""
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    config, tp = model.config, mesh.size()
    if getattr(config, "mlp", None) not in ("swiglu", "gelu"):
        raise ValueError(
            "tensor_parallel splits kata 16's model with a SwiGLU or GELU MLP, "
            f"not mlp={getattr(config, 'mlp', None)!r}"
        )
    hidden = config.mlp_hidden if config.mlp == "swiglu" else 4 * config.n_embd
    for name, value in (
        ("n_head", config.n_head),
        ("n_kv_head", config.kv_heads),
        ("mlp hidden width", hidden),
    ):
        if value % tp:
            raise ValueError(
                f"{name}={value} does not divide over {tp} processes: each "
                "process takes an equal share of the heads and hidden units"
            )
    mlp_plan = (
        {"w1": ColwiseParallel(), "w3": ColwiseParallel(), "w2": RowwiseParallel()}
        if config.mlp == "swiglu"
        else {"c_fc": ColwiseParallel(), "c_proj": RowwiseParallel()}
    )
    for block in model.transformer.h:
        block.attn = HeadShardedAttention(block.attn)
        parallelize_module(
            block.attn,
            mesh,
            {
                "q": ColwiseParallel(),
                "k": ColwiseParallel(),
                "v": ColwiseParallel(),
                "c_proj": RowwiseParallel(),
            },
        )
        parallelize_module(block.mlp, mesh, mlp_plan)
    return model


def grad_norm(model: nn.Module) -> float:
    """The global gradient norm of a tensor-parallel model: a split gradient's squares are
    summed over the processes (full_tensor), a whole one counted once."""
    total = 0.0
    for p in model.parameters():
        if p.grad is not None:
            g = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
            total += g.double().pow(2).sum().item()
    return total**0.5


def main(argv=None) -> int:
    """A few steps of the modern model on tiny Shakespeare, split over torchrun's processes."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cpu", help="a file in configs/ (default cpu)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    import harness

    harness.use(harness.program_impl())
    import models
    import torch.distributed as dist
    from guards import verified_data
    from run_settings import load_preset
    from shakespeare import get_batch, split_data
    from tokenizer import CharTokenizer
    from torch.distributed.device_mesh import init_device_mesh

    if "RANK" not in os.environ:
        print(
            "start it with torchrun: torchrun --nproc_per_node=2 scripts/tensor_parallel.py",
            file=sys.stderr,
        )
        return 2
    cuda = args.device.startswith("cuda")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = f"cuda:{os.environ['LOCAL_RANK']}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(device)
    mesh = init_device_mesh("cuda" if cuda else "cpu", (world,))
    text = verified_data("tinyshakespeare.txt").read_text()
    tokenizer = CharTokenizer(text)
    train_ids, _ = split_data(text, tokenizer)
    model_fields, train_fields = load_preset(args.preset)
    model_fields["vocab_size"] = tokenizer.vocab_size
    torch.manual_seed(1337)  # the same weights on every process
    model = models.build_model(models.model_fields("modern", model_fields)).to(device)
    tensor_parallel(model, mesh)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, foreach=False)
    batches = torch.Generator().manual_seed(1337)  # the same batches on every process
    block = model.config.block_size
    started = time.perf_counter()
    for step in range(args.steps):
        x, y = get_batch(train_ids, train_fields["batch_size"], block, batches, device)
        _, loss = model(x, y)
        loss.backward()
        norm = grad_norm(model)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if rank == 0 and (step % 5 == 0 or step == args.steps - 1):
            print(
                f"step {step}: loss {loss.item():.4f}, grad norm {norm:.3f} "
                f"[{time.perf_counter() - started:.1f}s, TP={world}]",
                flush=True,
            )
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
