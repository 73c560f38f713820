"""Kata 15: grouped-query attention, sliding-window attention, and a static KV cache that is
written in place (a rolling buffer when there is a window)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from rope import RMSNorm, apply_rope
from torch import Tensor


def visible(query_positions: Tensor, key_positions: Tensor, window: int | None) -> Tensor:
    """(n_query, n_key) bools: True where the query at position q may see the key at position
    k, i.e. q - window < k <= q (no lower bound without a window). A negative key position
    marks an empty cache slot, which nobody sees."""
    q, k = query_positions[:, None], key_positions[None, :]
    seen = (k >= 0) & (k <= q)
    if window is not None:
        seen &= k > q - window
    return seen


def check_window(window: int | None) -> None:
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                               or window < 1):
        raise ValueError(f"window must be None (full causal attention) or an int >= 1, "
                         f"got {window!r}")


def sliding_window_mask(n_query: int, n_key: int, window: int | None = None,
                        device: torch.device | str | None = None) -> Tensor:
    """(n_query, n_key) bools, True where query i may attend to key j.

    The queries are the last n_query of n_key positions; the query at position p sees keys
    max(0, p - window + 1) .. p. window=None is the plain causal mask of kata 09.
    """
    check_window(window)
    keys = torch.arange(n_key, device=device)
    return visible(keys[n_key - n_query:], keys, window)


class StaticKVCache:
    """Preallocated keys/values for every layer, written in place (no torch.cat per step).

    Without a window it holds positions 0..max_len-1, one slot each. With a window it is a
    rolling buffer of `window` slots: position p lives in slot p % window, so generation can
    go on for ever at constant memory (the attention needs no key older than the window).
    """

    def __init__(self, n_layer: int, batch_size: int, n_kv_head: int, head_dim: int,
                 max_len: int, window: int | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        sizes = dict(n_layer=n_layer, batch_size=batch_size, n_kv_head=n_kv_head,
                     head_dim=head_dim, max_len=max_len)
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"StaticKVCache: {name} must be a positive int, got {value!r}")
        check_window(window)
        self.window = window
        self.capacity = max_len if window is None else window  # slots per layer
        shape = (n_layer, batch_size, n_kv_head, self.capacity, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.written = [0] * n_layer  # positions written so far, per layer

    def __len__(self) -> int:
        """Positions every layer has written (may exceed the capacity of a rolling cache)."""
        return min(self.written)

    def nbytes(self) -> int:
        """Bytes held by the cache's tensors: the same after every step."""
        return self.keys.nbytes + self.values.nbytes

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Write k, v (B, n_kv_head, T, head_dim) at the next T positions of `layer`.

        Returns (keys, values, mask): what the T new queries attend to, and a (T, n_keys) bool
        mask, True where a query may see a key.
        """
        _, B, KV, _, hd = self.keys.shape
        if k.dim() != 4 or (k.shape[0], k.shape[1], k.shape[3]) != (B, KV, hd) \
                or v.shape != k.shape:
            raise ValueError(f"update takes k and v shaped (batch_size={B}, n_kv_head={KV}, T, "
                             f"head_dim={hd}) as the cache was made; got k {tuple(k.shape)} "
                             f"and v {tuple(v.shape)}")
        start, T = self.written[layer], k.shape[2]
        queries = torch.arange(start, start + T, device=k.device)
        keys, values = self.keys[layer], self.values[layer]  # views into the buffers

        if self.window is None:
            if start + T > self.capacity:
                raise ValueError(f"the cache holds max_len={self.capacity} positions and "
                                 f"{start} are written: no room for {T} more. Make a bigger "
                                 "cache, or give it a window (a rolling buffer)")
            keys[:, :, start:start + T] = k
            values[:, :, start:start + T] = v
            self.written[layer] = start + T
            n = start + T
            return keys[:, :, :n], values[:, :, :n], sliding_window_mask(T, n, None, k.device)

        W = self.window
        if min(start, W - 1) + T <= W:
            # Every key the new queries need fits in the buffer together: write, then read
            # the whole buffer (in slot order; the mask knows which position each slot holds).
            self._write(layer, k, v, start)
            return keys, values, visible(queries, self._slot_positions(start + T, k.device), W)
        # A chunk of several tokens after a full buffer: its first queries need keys that
        # its own later tokens would overwrite. Attend over the buffer AND the chunk, then
        # keep the chunk's last W positions.
        key_positions = torch.cat([self._slot_positions(start, k.device), queries])
        mask = visible(queries, key_positions, W)
        keys, values = torch.cat([keys, k], dim=2), torch.cat([values, v], dim=2)
        kept = min(T, W)
        self._write(layer, k[:, :, T - kept:], v[:, :, T - kept:], start + T - kept)
        return keys, values, mask

    def _write(self, layer: int, k: Tensor, v: Tensor, first: int) -> None:
        """Rolling buffer: copy positions first, first+1, ... into slots position % window."""
        slots = torch.arange(first, first + k.shape[2], device=k.device) % self.capacity
        self.keys[layer].index_copy_(2, slots, k.to(self.keys.dtype))
        self.values[layer].index_copy_(2, slots, v.to(self.values.dtype))
        self.written[layer] = first + k.shape[2]

    def _slot_positions(self, n_written: int, device) -> Tensor:
        """The position held by each slot once positions 0..n_written-1 are written: the
        latest p < n_written with p % W == slot, negative for a slot still empty."""
        slots = torch.arange(self.capacity, device=device)
        return slots + (n_written - 1 - slots).div(self.capacity, rounding_mode="floor") \
            * self.capacity


class GroupedQueryAttention(nn.Module):
    """Causal self-attention where n_head query heads share n_kv_head key/value heads.

    n_kv_head = n_head is kata 09's multi-head attention, n_kv_head = 1 is multi-query
    attention. Optional: rotary positions (rope), a sliding window, RMSNorm on q and k.
    """

    def __init__(self, n_embd: int, n_head: int, n_kv_head: int | None = None,
                 window: int | None = None, rope: bool = True, rope_base: float = 10000.0,
                 qk_norm: bool = False, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        n_kv_head = n_head if n_kv_head is None else n_kv_head
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}: every "
                             "head gets n_embd // n_head dimensions")
        if n_kv_head < 1 or n_head % n_kv_head:
            raise ValueError(f"n_kv_head={n_kv_head} must divide n_head={n_head}: each key/value "
                             "head serves n_head // n_kv_head query heads (1 = MQA, n_head = MHA)")
        check_window(window)
        self.n_head, self.n_kv_head = n_head, n_kv_head
        self.head_dim = n_embd // n_head
        if rope and self.head_dim % 2:
            raise ValueError(f"RoPE rotates pairs of dimensions: head_dim={self.head_dim} "
                             "must be even")
        self.window, self.rope, self.rope_base, self.dropout = window, rope, rope_base, dropout
        kv_dim = n_kv_head * self.head_dim
        self.c_attn = nn.Linear(n_embd, n_embd + 2 * kv_dim, bias=bias)  # q, then k, then v
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)  # after c_proj (sdpa's dropout_p drops weights)
        self.qk_norm = qk_norm
        if qk_norm:
            self.q_norm, self.k_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)

    def forward(self, x: Tensor, positions: Tensor | None = None,
                kv_cache: StaticKVCache | None = None, layer: int = 0) -> Tensor:
        """x (B, T, n_embd) -> (B, T, n_embd). positions: the (T,) absolute positions of x's
        tokens, by default len(kv_cache) (or 0) onwards."""
        B, T, C = x.shape
        H, KV, hd = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split([C, KV * hd, KV * hd], dim=2)
        q = q.view(B, T, H, hd).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(B, T, KV, hd).transpose(1, 2)  # (B, KV, T, hd)
        v = v.view(B, T, KV, hd).transpose(1, 2)
        if positions is None:
            start = 0 if kv_cache is None else len(kv_cache)
            positions = torch.arange(start, start + T, device=x.device)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:  # rotate queries and keys (never values) at their absolute positions
            q = apply_rope(q, positions, self.rope_base)
            k = apply_rope(k, positions, self.rope_base)

        if kv_cache is None:
            # A window as long as the sequence hides nothing the causal mask does not: then
            # sdpa builds the causal mask itself (is_causal), which lets it pick the flash kernel.
            covers = self.window is None or self.window >= T
            mask = None if covers else sliding_window_mask(T, T, self.window, x.device)
        else:
            if kv_cache.window != self.window:
                raise ValueError(f"the cache's window ({kv_cache.window}) must be the "
                                 f"attention's ({self.window}): make the cache with "
                                 f"window={self.window}")
            k, v, mask = kv_cache.update(layer, k, v)

        # Key/value head j serves query heads j*group .. (j+1)*group - 1. enable_gqa=True does
        # that grouping inside sdpa, without copying; it computes what
        # k.repeat_interleave(group, dim=1) (each head next to its copies, not repeat) would.
        dropout_p = self.dropout if self.training else 0.0
        if mask is None:  # no cache, no window shorter than T: sdpa's own causal mask
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True,
                                               enable_gqa=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,
                                               enable_gqa=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))
