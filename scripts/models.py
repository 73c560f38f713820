"""Which model a run trains and a checkpoint holds: kata 09's GPT ("gpt2") or kata 16's
ModernGPT ("modern"), whose MLP may be kata 19's mixture of experts (mlp "moe": MoEGPT).
train.py and sample.py ask here; the kata modules are imported only when needed, so `make
train` (gpt2) does not need kata 16, nor `ARCH=modern` kata 19."""

from __future__ import annotations

import torch

ARCHS = ("gpt2", "modern")
MLPS = ("swiglu", "moe")  # the modern model's MLP: kata 14's SwiGLU, or kata 19's MoE of them


def arch_of(model_config: dict) -> str:
    """A checkpoint's model_config says which model it holds: ModernConfig has a
    `positions` switch, kata 09's GPTConfig does not."""
    return "modern" if "positions" in model_config else "gpt2"


def model_fields(
    arch: str,
    gpt2_fields: dict,
    mlp: str | None = None,
    n_expert: int | None = None,
    top_k: int | None = None,
) -> dict:
    """The config fields of the model to train, from a preset's GPT-2 fields. "modern" is the
    modern model at the same parameter count (kata 16's modern_like); with mlp="moe", its
    MLPs become n_expert experts (default 8), top_k (default 2) per token, at the same
    ACTIVE parameter count (kata 19's moe_like)."""
    if arch == "gpt2":
        return gpt2_fields
    from dataclasses import asdict

    from gpt import GPTConfig
    from modern import modern_like

    dense = modern_like(GPTConfig(**gpt2_fields))
    if mlp != "moe":
        return asdict(dense)
    from moe import moe_like

    return asdict(moe_like(dense, n_expert=n_expert or 8, top_k=top_k or 2))


def build_model(fields: dict) -> torch.nn.Module:
    if arch_of(fields) == "gpt2":
        from gpt import GPT, GPTConfig

        return GPT(GPTConfig(**fields))
    if fields.get("mlp") == "moe":
        from moe import MoEConfig, MoEGPT

        return MoEGPT(MoEConfig(**fields))
    from modern import ModernConfig, ModernGPT

    return ModernGPT(ModernConfig(**fields))


def describe(model: torch.nn.Module) -> str:
    """The parts of a modern model in a few words ("" for GPT-2); an MoE's active share."""
    if arch_of(vars(model.config)) == "gpt2":
        return ""
    if model.config.mlp == "moe":
        from moe import describe as moe_parts

        return (
            f"modern: {moe_parts(model.config)}; {model.active_params() / 1e6:.2f}M of "
            "them active per token; "
        )
    from modern import describe as parts

    return f"modern: {parts(model.config)}; "


def expert_load_note(model: torch.nn.Module) -> str:
    """For an eval line: an MoE's expert load in its last forward (the last evaluation batch),
    each expert's share averaged over the layers, and the busiest expert of any layer against
    the uniform share. "" for a model without experts."""
    if getattr(model.config, "mlp", None) != "moe" or model.moe_layers()[0].load is None:
        return ""
    loads = model.expert_loads()  # (n_layer, n_expert), each row sums to 1
    shares = " ".join(f"{f:.2f}" for f in loads.mean(0).tolist())
    busiest = loads.max().item() * loads.size(1)
    return f"; expert load {shares} (busiest {busiest:.2f}x uniform)"


def tokenizer_from_dict(saved: dict):
    """A checkpoint's tokenizer: kata 17's byte-level BPE when it says "kind": "bpe",
    kata 02's characters otherwise."""
    if saved.get("kind") == "bpe":
        from bpe import BPETokenizer

        return BPETokenizer.from_dict(saved)
    from tokenizer import CharTokenizer

    return CharTokenizer.from_dict(saved)


def model_from_checkpoint(checkpoint: dict, device: str = "cpu"):
    """Kata 12's model_from_checkpoint for any model and tokenizer: (model in eval mode,
    tokenizer). A GPT-2 on characters is rebuilt by kata 12's own function."""
    from shakespeare import model_from_checkpoint as gpt2_from_checkpoint

    bpe = checkpoint["tokenizer"].get("kind") == "bpe"
    if arch_of(checkpoint["model_config"]) == "gpt2" and not bpe:
        return gpt2_from_checkpoint(checkpoint, device)
    model = build_model(checkpoint["model_config"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), tokenizer_from_dict(checkpoint["tokenizer"])


def generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, **sampling):
    """Kata 11's generate for GPT-2; kata 16's (a static KV cache, rolling past block_size
    when the model has RoPE and a window) for the modern model."""
    if arch_of(vars(model.config)) == "gpt2":
        from sampling import generate as generate_gpt2

        return generate_gpt2(model, idx, max_new_tokens, **sampling)
    from modern import generate as generate_modern

    return generate_modern(model, idx, max_new_tokens, **sampling)
