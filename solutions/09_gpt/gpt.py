"""Kata 09: a GPT-2-style character model as a PyTorch nn.Module, any size."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

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
    keys 0 up to and including that position.
    """
    visible = torch.ones(n_query, n_key, dtype=torch.bool, device=device)
    return visible.tril(diagonal=n_key - n_query)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.attention = config.attention
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None, layer: int = 0) -> Tensor:
        B, T, C = x.shape
        head_dim = C // self.n_head
        # One matmul makes q, k and v; split the channels into heads: (B, n_head, T, head_dim).
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, head_dim).transpose(1, 2) for t in (q, k, v))
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)  # now every position so far, not just these T
        n_key = k.shape[2]

        if self.attention == "sdpa":
            dropout_p = self.dropout if self.training else 0.0
            if n_key == T:  # no cached keys: the plain causal mask, which sdpa builds itself
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            else:  # queries after cached keys: is_causal would align the mask wrongly
                mask = causal_mask(T, n_key, x.device)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)  # (B, n_head, T, n_key)
            scores = scores.masked_fill(~causal_mask(T, n_key, x.device), float("-inf"))
            weights = self.attn_dropout(F.softmax(scores, dim=-1))
            y = weights @ v

        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm: normalise what goes into each sublayer, add its output to the residual."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.attn(self.ln_1(x), kv_cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # the tie: one tensor, used twice
        self._init_weights()

    def _init_weights(self) -> None:
        # named_parameters() lists the tied weight once, as transformer.wte.weight.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                # Each layer adds two of these into the residual stream; scaling them keeps
                # the stream's variance from growing with depth.
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))
            elif p.dim() == 2:  # embeddings and the other Linear weights
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            # LayerNorm gains keep their initial 1.

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                kv_cache: KVCache | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab_size), mean cross-entropy or None).

        With a kv_cache, idx holds the tokens at positions len(kv_cache) onwards, and their
        keys and values are appended to the cache.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}; "
                             "add a batch dimension with idx[None]")
        B, T = idx.shape
        start = 0 if kv_cache is None else len(kv_cache)
        if T == 0:
            raise ValueError(f"idx of shape {tuple(idx.shape)} has no tokens: give the model "
                             "at least one token per row")
        if start + T > self.config.block_size:
            cached = f" after {start} cached positions" if start else ""
            raise ValueError(
                f"got {T} tokens{cached}, but block_size is {self.config.block_size}: the "
                "model has a learned position embedding for positions 0..block_size-1 only. "
                "Crop the context to its last block_size tokens (idx[:, -block_size:]).")

        positions = torch.arange(start, start + T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(positions))
        for layer, block in enumerate(self.transformer.h):
            x = block(x, kv_cache, layer)
        logits = self.lm_head(self.transformer.ln_f(x))

        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))
        return logits, loss

    def num_params(self, include_wpe: bool = True) -> int:
        """Number of parameters; the tied wte / lm_head weight counts once."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared one once
        return n if include_wpe else n - self.transformer.wpe.weight.numel()
