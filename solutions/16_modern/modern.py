"""Kata 16: the modern GPT. One model, one switch per part: with every switch at its GPT-2
value it is kata 09's model; with the modern values it is a small 2026-style LLM."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F
from gpt import MLP  # kata 09's GELU MLP: c_fc, GELU, c_proj
from gqa import GroupedQueryAttention, StaticKVCache
from rope import RMSNorm
from sampling import check_sampling_args, sample_next
from swiglu import SwiGLU, swiglu_hidden
from torch import Tensor

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
    if config.norm == "layernorm":
        return nn.LayerNorm(config.n_embd, bias=config.bias)
    return RMSNorm(config.n_embd)


class Block(nn.Module):
    """Kata 09's pre-norm block, each part chosen by the config."""

    def __init__(self, config: ModernConfig):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = GroupedQueryAttention(
            config.n_embd, config.n_head, config.n_kv_head, window=config.window,
            rope=config.positions == "rope", rope_base=config.rope_base,
            qk_norm=config.qk_norm, dropout=config.dropout, bias=config.bias)
        self.ln_2 = make_norm(config)
        if config.mlp == "gelu":
            self.mlp = MLP(config)  # reads n_embd, bias and dropout, as from a GPTConfig
        else:
            self.mlp = SwiGLU(config.n_embd, config.mlp_hidden, config.dropout)

    def forward(self, x: Tensor, positions: Tensor, kv_cache: StaticKVCache | None = None,
                layer: int = 0) -> Tensor:
        x = x + self.attn(self.ln_1(x), positions, kv_cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


class ModernGPT(nn.Module):
    def __init__(self, config: ModernConfig):
        super().__init__()
        self.config = config
        parts = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))
        if config.positions == "learned":  # with RoPE the attention itself knows positions
            parts["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        parts |= dict(drop=nn.Dropout(config.dropout),
                      h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                      ln_f=make_norm(config))
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as in kata 09
        self._init_weights()

    def _init_weights(self) -> None:
        """Kata 09's init. The residual projections are attention's c_proj and the MLP's
        down projection: c_proj for GELU, w2 for SwiGLU."""
        residual = ("c_proj.weight", "mlp.w2.weight")
        for name, p in self.named_parameters():
            if name.endswith(residual):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))
            elif p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            # norm gains (LayerNorm, RMSNorm, QK-norm) keep their initial 1

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                kv_cache: StaticKVCache | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab_size), mean cross-entropy or None).

        With a kv_cache, idx holds the tokens at positions len(kv_cache) onwards. Positions
        stop at block_size - 1 unless the model is `rolling` (rope and a window).
        """
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError(f"idx must be (batch, time) token ids with at least one token, "
                             f"got shape {tuple(idx.shape)}")
        B, T = idx.shape
        start = 0 if kv_cache is None else len(kv_cache)  # read once, before any layer writes
        if start + T > self.config.block_size and not self.config.rolling:
            # Learned positions stop at block_size - 1; RoPE without a window never saw a
            # distance of block_size or more.
            raise ValueError(f"got {T} tokens after {start} cached positions, but block_size is "
                             f"{self.config.block_size} and only a model with RoPE and a window "
                             "reads past it. Crop the context to its last block_size tokens "
                             "(idx[:, -block_size:])")

        positions = torch.arange(start, start + T, device=idx.device)
        x = self.transformer.wte(idx)
        if self.config.positions == "learned":
            x = x + self.transformer.wpe(positions)
        x = self.transformer.drop(x)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, positions, kv_cache, layer)
        logits = self.lm_head(self.transformer.ln_f(x))

        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))
        return logits, loss

    def num_params(self) -> int:
        """Number of parameters; the tied wte / lm_head weight counts once."""
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------- parameter parity


def count_params(config: ModernConfig) -> int:
    """ModernGPT(config).num_params(), without allocating the weights (meta device)."""
    with torch.device("meta"):
        return ModernGPT(config).num_params()


def matched_mlp_hidden(config: ModernConfig, target: int, multiple_of: int = 16) -> int:
    """The SwiGLU width, a multiple of multiple_of, that brings the model's parameter count
    closest to target. Each unit of width adds 3 * n_embd weights per layer (w1, w3, w2)."""
    per_unit = 3 * config.n_embd * config.n_layer
    base = count_params(replace(config, mlp="swiglu", mlp_hidden=multiple_of))
    units = round((target - base) / (per_unit * multiple_of))
    return multiple_of * max(1, 1 + units)


def modern_like(config, multiple_of: int = 16, **switches) -> ModernConfig:
    """The modern model at the parameter count of a GPT-2 model of these sizes (a kata 09
    GPTConfig or a ModernConfig): RMSNorm, RoPE, SwiGLU, n_head // 2 key/value heads, a window
    of block_size, then mlp_hidden chosen for parity. `switches` change any of those."""
    sizes = {name: getattr(config, name) for name in
             ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias")}
    target = count_params(ModernConfig.gpt2(**sizes))
    kv = config.n_head // 2 if config.n_head % 2 == 0 else config.n_head
    modern = ModernConfig(**sizes, **{"n_kv_head": kv, "window": config.block_size, **switches})
    if modern.mlp != "swiglu" or "mlp_hidden" in switches:
        return modern
    return replace(modern, mlp_hidden=matched_mlp_hidden(modern, target, multiple_of))


# ---------------------------------------------------------------- generation


def new_cache(model: ModernGPT, batch_size: int) -> StaticKVCache:
    """A StaticKVCache for the model, on its device and in its dtype: block_size slots, or a
    rolling buffer of `window` slots when the model has a window."""
    c = model.config
    weight = model.lm_head.weight
    return StaticKVCache(c.n_layer, batch_size, c.kv_heads, c.n_embd // c.n_head,
                         max_len=c.block_size, window=c.window, dtype=weight.dtype,
                         device=weight.device)


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
    check_sampling_args(temperature, top_k, top_p)
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"the prompt must be (batch, time) token ids with at least one token, "
                         f"got shape {tuple(idx.shape)}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    block_size, rolling = model.config.block_size, model.config.rolling

    def context(idx: Tensor) -> Tensor:
        return idx if rolling else idx[:, -block_size:]

    was_training = model.training
    model.eval()
    try:
        cache, feed = None, context(idx)
        for _ in range(max_new_tokens):
            if not use_cache:
                logits, _ = model(context(idx))
            else:
                if cache is None or (not rolling and len(cache) + feed.size(1) > block_size):
                    cache, feed = new_cache(model, idx.size(0)), context(idx)
                logits, _ = model(feed, kv_cache=cache)
            feed = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
            idx = torch.cat([idx, feed], dim=1)
        return idx
    finally:
        model.train(was_training)


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
