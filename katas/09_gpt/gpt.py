"""Kata 09: a GPT-2-style character model as a PyTorch nn.Module, any size.

Read katas/09_gpt/README.md first. GPTConfig, PRESETS and KVCache are given; replace every
`raise NotImplementedError` below. Run `make kata K=09` to check your work.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401
from torch import Tensor

LESSON = "see katas/09_gpt/README.md"

ATTENTION_KINDS = ("sdpa", "manual")


@dataclass
class GPTConfig:
    """Every size and switch of the model. Change one with dataclasses.replace(config, ...)."""

    vocab_size: int = 65  # tiny Shakespeare has 65 distinct characters
    block_size: int = 256  # the longest sequence the model reads (wpe has this many rows)
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384  # each head gets n_embd // n_head dimensions
    dropout: float = 0.0
    bias: bool = False  # biases in the Linear layers and LayerNorms
    attention: str = "sdpa"  # "sdpa": F.scaled_dot_product_attention; "manual": masked softmax

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: "
                             "every head gets n_embd // n_head dimensions")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is a probability in [0, 1), got {self.dropout}")
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")


PRESETS: dict[str, GPTConfig] = {
    "tiny": GPTConfig(n_layer=2, n_head=2, n_embd=128),  # 434,944 parameters
    "small": GPTConfig(n_layer=4, n_head=4, n_embd=256),  # 3,230,208
    "medium": GPTConfig(n_layer=6, n_head=6, n_embd=384),  # 10,745,088
}


class KVCache:
    """The keys and values every attention layer has computed so far during generation.

    keys[layer] and values[layer] are (B, n_head, t, head_dim) tensors for positions 0..t-1,
    or None before the first forward. Pass one to `GPT.forward(idx, kv_cache=cache)`: the
    model then reads idx as the tokens at positions len(cache), len(cache)+1, ...
    """

    def __init__(self, n_layer: int):
        self.keys: list[Tensor | None] = [None] * n_layer
        self.values: list[Tensor | None] = [None] * n_layer

    def __len__(self) -> int:
        """How many positions are cached."""
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this call's keys and values for `layer`; return those of every position."""
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


def causal_mask(n_query: int, n_key: int, device: torch.device | str | None = None) -> Tensor:
    """(n_query, n_key) bools: True where query i may attend to key j.

    The queries are the last n_query of the n_key positions (with a KV cache the earlier
    keys come from the cache), so query i sits at position n_key - n_query + i and sees
    keys 0 up to and including that position. causal_mask(3, 3) is lower-triangular.
    """
    raise NotImplementedError(f"causal_mask: torch.ones(...).tril(diagonal=...); {LESSON}")


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused q/k/v projection.

    Submodules (these names make the state dict): c_attn = Linear(n_embd, 3 * n_embd) and
    c_proj = Linear(n_embd, n_embd), both with bias=config.bias; attn_dropout and
    resid_dropout = Dropout(config.dropout). Keep config.attention ("sdpa" or "manual") and
    config.dropout for forward.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        raise NotImplementedError(f"CausalSelfAttention.__init__: c_attn, c_proj...; {LESSON}")

    def forward(self, x: Tensor, kv_cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """x (B, T, n_embd) -> (B, T, n_embd).

        Split c_attn(x) into q, k, v and each into heads (B, n_head, T, head_dim). With a
        kv_cache, replace k and v by kv_cache.update(layer, k, v) (every position so far).
        "sdpa": F.scaled_dot_product_attention(..., is_causal=True) when there are no cached
        keys, else with attn_mask=causal_mask(T, n_key); dropout_p only while training.
        "manual": softmax(q @ k^T / sqrt(head_dim), masked to -inf where causal_mask is False),
        attn_dropout, @ v. Then heads back side by side, c_proj, resid_dropout.
        """
        raise NotImplementedError(f"CausalSelfAttention.forward: both attention paths; {LESSON}")


class MLP(nn.Module):
    """c_fc = Linear(n_embd, 4 * n_embd), GELU (nn.GELU(), exact), c_proj = Linear(4 * n_embd,
    n_embd), then Dropout; Linear biases if config.bias."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        raise NotImplementedError(f"MLP.__init__: c_fc, gelu, c_proj, dropout; {LESSON}")

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"MLP.forward: dropout(c_proj(gelu(c_fc(x)))); {LESSON}")


class Block(nn.Module):
    """Pre-norm: ln_1 = LayerNorm(n_embd, bias=config.bias), attn, ln_2, mlp."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        raise NotImplementedError(f"Block.__init__: ln_1, attn, ln_2, mlp; {LESSON}")

    def forward(self, x: Tensor, kv_cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)). Pass kv_cache and layer to attn."""
        raise NotImplementedError(f"Block.forward: two residual additions; {LESSON}")


class GPT(nn.Module):
    """The whole model. Submodules: transformer = nn.ModuleDict(wte, wpe, drop, h, ln_f) and
    lm_head = Linear(n_embd, vocab_size, bias=False), whose weight IS transformer.wte.weight.
    Keep the config as self.config (generation reads self.config.block_size)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        raise NotImplementedError(f"GPT.__init__: modules, the tie, then _init_weights(); {LESSON}")

    def _init_weights(self) -> None:
        """GPT-2 init: normal(0, 0.02) for embeddings and Linear weights, but
        normal(0, 0.02 / sqrt(2 * n_layer)) for every c_proj.weight; biases 0; LayerNorm
        gains stay 1."""
        raise NotImplementedError(f"GPT._init_weights: loop over named_parameters(); {LESSON}")

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                kv_cache: KVCache | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab_size), mean cross-entropy or None).

        More than block_size tokens (counting the cached ones) is a ValueError that names
        both numbers; idx that is not (B, T) with at least one token is a ValueError giving
        its shape. With a kv_cache, idx holds the tokens at positions len(kv_cache) onwards:
        their position embeddings start there.
        """
        raise NotImplementedError(f"GPT.forward: embeddings, blocks, ln_f, lm_head, loss; {LESSON}")

    def num_params(self, include_wpe: bool = True) -> int:
        """Number of parameters; the tied wte / lm_head weight counts once."""
        raise NotImplementedError(f"GPT.num_params: sum p.numel() over self.parameters(); {LESSON}")
