"""Kata 15: grouped-query attention, sliding-window attention, and a static KV cache that is
written in place (a rolling buffer when there is a window).

Read katas/15_gqa/README.md first. Replace every `raise NotImplementedError` below; run
`make kata K=15` to check your work. Kata 13's RMSNorm and apply_rope are imported for you.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401
from rope import RMSNorm, apply_rope  # noqa: F401  (kata 13)
from torch import Tensor

LESSON = "see katas/15_gqa/README.md"


def sliding_window_mask(n_query: int, n_key: int, window: int | None = None,
                        device: torch.device | str | None = None) -> Tensor:
    """(n_query, n_key) bools, True where query i may attend to key j.

    The queries are the last n_query of n_key positions (query i sits at position
    p = n_key - n_query + i); it sees keys max(0, p - window + 1) .. p. window=None is the
    plain causal mask of kata 09. A window that is not None or an int >= 1 is a ValueError.
    """
    raise NotImplementedError(f"sliding_window_mask: key j <= p and j > p - window; {LESSON}")


class StaticKVCache:
    """Preallocated keys/values for every layer, written in place (no torch.cat per step).

    Keep `self.window` (the attention checks that it matches its own). Capacity per layer:
    max_len slots, or `window` slots when window is set: then it is a ROLLING buffer where
    position t lives in slot t % window, and generation can go on past max_len at constant
    memory. Allocate everything here, in `dtype` on `device`; a size that is not a positive
    int, or a window that is not None or an int >= 1, is a ValueError naming the value.
    """

    def __init__(self, n_layer: int, batch_size: int, n_kv_head: int, head_dim: int,
                 max_len: int, window: int | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        raise NotImplementedError(f"StaticKVCache.__init__: keys and values, zeros; {LESSON}")

    def __len__(self) -> int:
        """Positions written so far by EVERY layer, the smallest count over the layers (may
        exceed a rolling buffer's slots): between one layer's write and the next it still
        says where the forward started."""
        raise NotImplementedError(f"StaticKVCache.__len__: count positions per layer; {LESSON}")

    def nbytes(self) -> int:
        """Bytes held by the cache's tensors (tensor.nbytes): the same after every step."""
        raise NotImplementedError(f"StaticKVCache.nbytes: keys.nbytes + values.nbytes; {LESSON}")

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Write k, v (B, n_kv_head, T, head_dim) at the next T positions of `layer`.

        Returns (keys, values, mask): what the T new queries attend to (views of the buffers,
        not copies, when the new tokens fit) and a (T, n_keys) bool mask, True where a query
        may see a key. Without a window: keys of positions 0 .. start + T - 1 and the causal
        mask; a full cache is a ValueError naming max_len. With a window: the buffer's slots
        in slot order, masked by the position each slot holds; a chunk whose first queries
        need keys it would overwrite is attended to (buffer + chunk) before it is written.
        k and v of another dtype are stored in the cache's dtype; k and v may require grad.
        k not shaped (batch_size, n_kv_head, T, head_dim) with this cache's sizes, or v not
        shaped like k, is a ValueError that gives the shape.
        """
        raise NotImplementedError(f"StaticKVCache.update: write in place, return a mask; {LESSON}")


class GroupedQueryAttention(nn.Module):
    """Causal self-attention where n_head query heads share n_kv_head key/value heads.

    n_kv_head None means n_head (kata 09's multi-head attention); it must divide n_head
    (ValueError otherwise); 1 is multi-query attention. head_dim = n_embd // n_head.
    Submodules (they make the state dict): c_attn = Linear(n_embd, n_embd + 2 * n_kv_head *
    head_dim, bias) laid out q, then k, then v; c_proj = Linear(n_embd, n_embd, bias);
    resid_dropout = Dropout(dropout) (the attention weights are dropped by sdpa's dropout_p);
    with qk_norm, q_norm and k_norm = RMSNorm(head_dim). Keep window, rope, rope_base and
    dropout for forward. n_embd not divisible by n_head, or an odd head_dim with rope, is a
    ValueError that names the value.
    """

    def __init__(self, n_embd: int, n_head: int, n_kv_head: int | None = None,
                 window: int | None = None, rope: bool = True, rope_base: float = 10000.0,
                 qk_norm: bool = False, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        raise NotImplementedError(f"GroupedQueryAttention.__init__: c_attn, c_proj; {LESSON}")

    def forward(self, x: Tensor, positions: Tensor | None = None,
                kv_cache: StaticKVCache | None = None, layer: int = 0) -> Tensor:
        """x (B, T, n_embd) -> (B, T, n_embd).

        positions: the (T,) absolute positions of x's tokens; by default start .. start+T-1
        with start = len(kv_cache) (read before writing; it counts on past a window) or 0.
        Split c_attn(x) into q (B, n_head, T, hd), k and v (B, n_kv_head, T, hd);
        q_norm/k_norm; RoPE on q and k at `positions`; with a kv_cache (whose window must be
        this attention's, else a ValueError), k, v, mask = kv_cache.update(layer, k, v), else
        the window mask; each key/value head repeated for its group of query heads
        (repeat_interleave); sdpa (dropout_p only while training); heads side by side;
        c_proj; resid_dropout.
        """
        raise NotImplementedError(f"GroupedQueryAttention.forward: see above; {LESSON}")
