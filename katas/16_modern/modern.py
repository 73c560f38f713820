"""Kata 16: the modern GPT. One model, one switch per part: with every switch at its GPT-2
value it is kata 09's model; with the modern values it is a small 2026-style LLM.

Read katas/16_modern/README.md first. ModernConfig, PRESETS, count_params and describe are
given; replace every `raise NotImplementedError` below. Run `make kata K=16` to check.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401
from gpt import MLP  # noqa: F401  (kata 09's GELU MLP: c_fc, GELU, c_proj)
from gqa import GroupedQueryAttention, StaticKVCache
from rope import RMSNorm  # noqa: F401
from sampling import check_sampling_args, sample_next  # noqa: F401
from swiglu import SwiGLU, swiglu_hidden  # noqa: F401
from torch import Tensor

LESSON = "see katas/16_modern/README.md"

CHOICES = {"norm": ("layernorm", "rmsnorm"), "positions": ("learned", "rope"),
           "mlp": ("gelu", "swiglu")}


@dataclass
class ModernConfig:
    """Kata 09's sizes, plus one switch per part. The defaults are the modern choices."""

    vocab_size: int = 65
    block_size: int = 256  # the training context; with rope and a window, generation goes on
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = False
    norm: str = "rmsnorm"  # "layernorm" (GPT-2) | "rmsnorm"
    positions: str = "rope"  # "learned" (GPT-2's wpe) | "rope"
    mlp: str = "swiglu"  # "gelu" (GPT-2) | "swiglu"
    mlp_hidden: int | None = None  # SwiGLU width; None -> swiglu_hidden(n_embd)
    n_kv_head: int | None = None  # None -> n_head (multi-head); 1 -> multi-query
    window: int | None = None  # sliding-window attention; None -> full causal
    qk_norm: bool = False  # RMSNorm on each head's queries and keys
    rope_base: float = 10000.0

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModernConfig.{name} must be a positive int, got {value!r}")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"ModernConfig.{name} must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: "
                             "every head gets n_embd // n_head dimensions")
        if self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"RoPE turns pairs of numbers: head_dim = n_embd // n_head = "
                             f"{self.n_embd // self.n_head} must be even")
        if self.kv_heads < 1 or self.n_head % self.kv_heads:
            raise ValueError(f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head} "
                             "(1 = multi-query, n_head = multi-head)")
        for name in ("mlp_hidden", "window"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"ModernConfig.{name} must be None or a positive int, "
                                 f"got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is a probability in [0, 1), got {self.dropout}")

    @classmethod
    def gpt2(cls, **sizes) -> ModernConfig:
        """Every switch at its GPT-2 value: kata 09's model, whatever the sizes."""
        return cls(**{"norm": "layernorm", "positions": "learned", "mlp": "gelu", **sizes})

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def rolling(self) -> bool:
        """Can generation run past block_size? Only with relative positions and a window."""
        return self.positions == "rope" and self.window is not None


# The modern model at the size of each kata 09 preset (block 256, vocab 65): RMSNorm, RoPE,
# SwiGLU, half as many key/value heads as query heads, a window of block_size (the same
# attention as full causal in training; a rolling cache in generation). mlp_hidden is what
# matched_mlp_hidden gives, so the counts stay within 2% of GPT-2's:
PRESETS: dict[str, ModernConfig] = {
    # GPT-2 tiny has 434,944 parameters; this one 439,040 (+0.94%)
    "tiny": ModernConfig(n_layer=2, n_head=2, n_embd=128, n_kv_head=1, window=256,
                         mlp_hidden=432),
    # GPT-2 small: 3,230,208; this one 3,213,824 (-0.51%)
    "small": ModernConfig(n_layer=4, n_head=4, n_embd=256, n_kv_head=2, window=256,
                          mlp_hidden=784),
    # GPT-2 medium: 10,745,088; this one 10,757,376 (+0.11%)
    "medium": ModernConfig(n_layer=6, n_head=6, n_embd=384, n_kv_head=3, window=256,
                           mlp_hidden=1168),
}


def make_norm(config: ModernConfig) -> nn.Module:
    """A norm over n_embd: nn.LayerNorm(n_embd, bias=config.bias) or RMSNorm(n_embd)."""
    raise NotImplementedError(f"make_norm: LayerNorm or RMSNorm by config.norm; {LESSON}")


class Block(nn.Module):
    """Kata 09's pre-norm block, each part chosen by the config: ln_1, attn (kata 15's
    GroupedQueryAttention), ln_2, mlp (kata 09's MLP or kata 14's SwiGLU)."""

    def __init__(self, config: ModernConfig):
        super().__init__()
        raise NotImplementedError(f"Block.__init__: ln_1, attn, ln_2, mlp; {LESSON}")

    def forward(self, x: Tensor, positions: Tensor, kv_cache: StaticKVCache | None = None,
                layer: int = 0) -> Tensor:
        raise NotImplementedError(f"Block.forward: x + attn(ln_1(x)), x + mlp(ln_2(x)); {LESSON}")


class ModernGPT(nn.Module):
    """transformer.{wte, wpe (learned positions only), drop, h, ln_f} and lm_head tied to wte,
    named as in kata 09. Store the config as self.config."""

    def __init__(self, config: ModernConfig):
        super().__init__()
        raise NotImplementedError(f"ModernGPT.__init__: kata 09's layout, parts by switch; "
                                  f"{LESSON}")

    def _init_weights(self) -> None:
        """Kata 09's init; the residual projections are attention's c_proj and the MLP's down
        projection (c_proj for GELU, w2 for SwiGLU)."""
        raise NotImplementedError(f"_init_weights: normal(0, 0.02), residual ones scaled; "
                                  f"{LESSON}")

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                kv_cache: StaticKVCache | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab_size), mean cross-entropy or None).

        With a kv_cache, idx holds the tokens at positions len(kv_cache) onwards (read it once,
        before the layers run). A ValueError that mentions block_size when the positions
        would reach block_size, unless the model is `rolling` (rope AND a window: learned
        positions with a window stop at block_size too); a
        ValueError giving idx's shape unless idx is (B, T) with at least one token.
        """
        raise NotImplementedError(f"ModernGPT.forward: positions, blocks, ln_f, lm_head; {LESSON}")

    def num_params(self) -> int:
        """Number of parameters; the tied wte / lm_head weight counts once. Works on the
        meta device too (count_params builds the model there)."""
        raise NotImplementedError(f"num_params: sum over self.parameters(); {LESSON}")


# ---------------------------------------------------------------- parameter parity


def count_params(config: ModernConfig) -> int:
    """ModernGPT(config).num_params(), without allocating the weights (meta device)."""
    with torch.device("meta"):
        return ModernGPT(config).num_params()


def matched_mlp_hidden(config: ModernConfig, target: int, multiple_of: int = 16) -> int:
    """The SwiGLU width, a multiple of multiple_of, that brings the model's parameter count
    (config with mlp="swiglu" and that width) closest to target."""
    raise NotImplementedError(f"matched_mlp_hidden: count_params is linear in the width; "
                              f"{LESSON}")


def modern_like(config, multiple_of: int = 16, **switches) -> ModernConfig:
    """The modern model at the parameter count of a GPT-2 model of these sizes (a kata 09
    GPTConfig or a ModernConfig): the same vocab_size, block_size, n_layer, n_head, n_embd,
    dropout and bias; RMSNorm, RoPE, SwiGLU; n_head // 2 key/value heads (n_head when n_head is
    odd); window = block_size; then mlp_hidden from matched_mlp_hidden. `switches` change any
    of those (an explicit mlp_hidden, or mlp="gelu", is kept as given)."""
    raise NotImplementedError(f"modern_like: sizes, modern switches, matched width; {LESSON}")


# ---------------------------------------------------------------- generation


def new_cache(model: ModernGPT, batch_size: int) -> StaticKVCache:
    """A StaticKVCache for the model, on its device and in its dtype: block_size slots, or a
    rolling buffer of `window` slots when the model has a window."""
    raise NotImplementedError(f"new_cache: StaticKVCache(n_layer, batch, kv heads, head_dim, "
                              f"...); {LESSON}")


@torch.no_grad()
def generate(model: ModernGPT, idx: Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None, use_cache: bool = True) -> Tensor:
    """Kata 11's generate for the modern model, with a StaticKVCache by default.

    A rolling model (rope and a window) never crops: its cache keeps the last `window`
    positions and generation goes past block_size at constant memory. Otherwise the context
    stops at block_size and a full cache starts again from the last block_size tokens, as in
    kata 11. use_cache=False recomputes everything every step: the same tokens, slowly.
    """
    raise NotImplementedError(f"generate: kata 11's loop with new_cache; {LESSON}")


def describe(config: ModernConfig) -> str:
    """One line naming each part, for logs: e.g. 'rmsnorm, rope, swiglu(1168), gqa 6q/3kv,
    window 256'."""
    mlp = "gelu" if config.mlp == "gelu" else \
        f"swiglu({config.mlp_hidden or swiglu_hidden(config.n_embd)})"
    kv = config.kv_heads
    attn = "mha" if kv == config.n_head else "mqa" if kv == 1 else f"gqa {config.n_head}q/{kv}kv"
    parts = [config.norm, config.positions, mlp, attn]
    if config.window:
        parts.append(f"window {config.window}")
    if config.qk_norm:
        parts.append("qk-norm")
    return ", ".join(parts)
