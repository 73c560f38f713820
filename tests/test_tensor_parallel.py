"""Tensor parallelism (scripts/tensor_parallel.py): kata 16's modern model split over 2 gloo
CPU processes (attention by heads, SwiGLU by hidden units; ColwiseParallel in, RowwiseParallel
out) computes what one process computes. Loss and every gradient agree within ATOL: the same
sums, added in another order (two partial matmuls and an all-reduce instead of one matmul),
so they may differ in the last float32 bits and no more."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not (ROOT / "solutions").is_dir(), reason="needs the reference solutions"
)
ATOL = 1e-5  # float32: the losses are ~4, the gradients ~1e-2; reordered sums differ ~1e-7
STEPS = 3  # AdamW steps compared (losses after each)
WINDOWS = (None, 8)  # full causal (is_causal), and a window shorter than the 16 tokens


def tiny_modern(window: int | None):
    from modern import ModernConfig, ModernGPT

    torch.manual_seed(0)
    return ModernGPT(
        ModernConfig(
            vocab_size=37,
            block_size=16,
            n_layer=2,
            n_head=4,
            n_embd=32,
            n_kv_head=2,
            mlp_hidden=48,
            window=window,
        )
    )


def single_process_run(window: int | None) -> dict:
    model = tiny_modern(window)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, foreach=False)
    gen = torch.Generator().manual_seed(1)
    losses, grads = [], None
    for step in range(STEPS):
        x = torch.randint(37, (3, 17), generator=gen)
        _, loss = model(x[:, :-1].contiguous(), x[:, 1:].contiguous())
        loss.backward()
        if step == 0:
            grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return {"losses": losses, "grads": grads}


def worker(rank: int, world: int, store: str, out: str) -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "scripts"))
    import harness

    harness.use("solutions")
    import torch.distributed as dist
    from tensor_parallel import tensor_parallel
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        runs = {}
        for window in WINDOWS:
            model = tiny_modern(window)
            tensor_parallel(model, init_device_mesh("cpu", (world,)))
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, foreach=False)
            gen = torch.Generator().manual_seed(1)
            losses, grads = [], None
            for step in range(STEPS):
                x = torch.randint(37, (3, 17), generator=gen)
                _, loss = model(x[:, :-1].contiguous(), x[:, 1:].contiguous())
                loss.backward()
                if step == 0:  # whole gradients, gathered from the processes' slices
                    grads = {
                        n: p.grad.full_tensor()
                        if hasattr(p.grad, "full_tensor")
                        else p.grad.clone()
                        for n, p in model.named_parameters()
                    }
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
            runs[str(window)] = {"losses": losses, "grads": grads}
        if rank == 0:
            torch.save(runs, out)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory) -> dict:
    """Both windows' runs from one start of 2 processes (starting them is the slow part)."""
    tmp = tmp_path_factory.mktemp("tp")
    mp.start_processes(
        worker, args=(2, str(tmp / "store"), str(tmp / "tp.pt")), nprocs=2, start_method="spawn"
    )
    return torch.load(tmp / "tp.pt", weights_only=True)


def as_fused_names(grads: dict) -> dict:
    """The sharded model's q, k, v gradients as the one c_attn gradient of kata 15's layout."""
    fused = {}
    for name, g in grads.items():
        if name.endswith("attn.q.weight"):
            stem = name[: -len("q.weight")]
            fused[stem + "c_attn.weight"] = torch.cat(
                [g, grads[stem + "k.weight"], grads[stem + "v.weight"]]
            )
        elif not name.endswith(("attn.k.weight", "attn.v.weight")):
            fused[name] = g
    return fused


@pytest.mark.parametrize("window", WINDOWS, ids=["causal", "window-8"])
def test_two_gloo_processes_compute_what_one_does(two_process_runs, window):
    import harness

    harness.use("solutions")
    want = single_process_run(window)
    got = two_process_runs[str(window)]
    assert torch.allclose(torch.tensor(got["losses"]), torch.tensor(want["losses"]), atol=ATOL), (
        got["losses"],
        want["losses"],
    )
    got_grads = as_fused_names(got["grads"])
    assert set(got_grads) == set(want["grads"]), sorted(set(got_grads) ^ set(want["grads"]))
    for name, g in want["grads"].items():
        diff = (got_grads[name] - g).abs().max().item()
        assert diff <= ATOL, f"{name}: gradient differs by {diff:.2e} (> {ATOL})"


def test_refuses_heads_that_do_not_divide():
    sys.path.insert(0, str(ROOT / "scripts"))
    import harness

    harness.use("solutions")
    from tensor_parallel import tensor_parallel

    class Mesh:
        def size(self) -> int:
            return 3

    with pytest.raises(ValueError, match="n_head=4 does not divide over 3"):
        tensor_parallel(tiny_modern(None), Mesh())
