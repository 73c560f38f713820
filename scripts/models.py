"""Which model a run trains and a checkpoint holds: kata 09's GPT ("gpt2") or kata 16's
ModernGPT ("modern"). train.py and sample.py ask here; the kata modules are imported only
when needed, so `make train` (gpt2) does not need kata 16."""

from __future__ import annotations

import torch

ARCHS = ("gpt2", "modern")


def arch_of(model_config: dict) -> str:
    """A checkpoint's model_config says which model it holds: ModernConfig has a
    `positions` switch, kata 09's GPTConfig does not."""
    return "modern" if "positions" in model_config else "gpt2"


def model_fields(arch: str, gpt2_fields: dict) -> dict:
    """The config fields of the model to train, from a preset's GPT-2 fields. "modern" is the
    modern model at the same parameter count (kata 16's modern_like)."""
    if arch == "gpt2":
        return gpt2_fields
    from dataclasses import asdict

    from gpt import GPTConfig
    from modern import modern_like

    return asdict(modern_like(GPTConfig(**gpt2_fields)))


def build_model(fields: dict) -> torch.nn.Module:
    if arch_of(fields) == "gpt2":
        from gpt import GPT, GPTConfig

        return GPT(GPTConfig(**fields))
    from modern import ModernConfig, ModernGPT

    return ModernGPT(ModernConfig(**fields))


def describe(model: torch.nn.Module) -> str:
    """The parts of a modern model in a few words ("" for GPT-2)."""
    if arch_of(vars(model.config)) == "gpt2":
        return ""
    from modern import describe as parts

    return f"modern: {parts(model.config)}; "


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
