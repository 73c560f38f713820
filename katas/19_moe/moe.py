"""Kata 19: a sparse mixture of experts. A router sends each token to top_k of n_expert SwiGLU
MLPs; only those run, so a layer holds n_expert experts' weights but spends top_k experts'
work per token. Two ways to keep the experts evenly used: the Switch auxiliary loss, or
DeepSeek-V3's bias on the routing scores.

Read katas/19_moe/README.md first. check_top_k, MoEConfig, MoEGPT.moe_layers,
MoEGPT.expert_loads, moe_like, count_moe_params and describe are given; replace every
`raise NotImplementedError` below. Run `make kata K=19` to check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
from modern import ModernConfig, ModernGPT
from modern import describe as describe_modern
from swiglu import SwiGLU, swiglu_hidden  # noqa: F401  (kata 14's experts)
from torch import Tensor

LESSON = "see katas/19_moe/README.md"

BALANCE = ("aux", "bias")


def check_top_k(top_k, n_expert: int) -> None:
    """ValueError naming top_k and its value unless it is an int from 1 to n_expert. Given."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= n_expert:
        raise ValueError(f"top_k must be an int from 1 to n_expert={n_expert}, got {top_k!r}")


# ---------------------------------------------------------------- routing and its losses


def route(logits: Tensor, top_k: int, bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Router logits (..., E) -> (gates (..., top_k), experts (..., top_k) int64).

    experts: the top_k experts by logits + bias (bias None: by the logits), in any order.
    gates: the softmax over those experts' logits WITHOUT the bias; they sum to 1 per token
    and carry the gradient to the logits. check_top_k first.
    """
    raise NotImplementedError(f"route: topk of logits + bias, softmax of the chosen logits; "
                              f"{LESSON}")


def expert_load(experts: Tensor, n_expert: int) -> Tensor:
    """f (n_expert,): the fraction of all (token, slot) assignments in `experts` (..., top_k)
    that went to each expert. A float tensor that sums to 1."""
    raise NotImplementedError(f"expert_load: count each expert's assignments, divide by "
                              f"their number; {LESSON}")


def load_balancing_loss(logits: Tensor, experts: Tensor) -> Tensor:
    """The Switch Transformer loss E * sum_i f_i * P_i, a 0-d tensor: f from expert_load,
    P_i the mean over tokens of softmax(logits over all E)_i. 1 under uniform routing."""
    raise NotImplementedError(f"load_balancing_loss: E * sum(f * P); {LESSON}")


def router_z_loss(logits: Tensor) -> Tensor:
    """ST-MoE's z-loss, a 0-d tensor: the mean over tokens of logsumexp(logits over E)^2."""
    raise NotImplementedError(f"router_z_loss: mean of logsumexp squared; {LESSON}")


def bias_update(bias: Tensor, load: Tensor, gamma: float) -> Tensor:
    """DeepSeek-V3's step, a new tensor: bias - gamma * sign(load - mean load).
    ValueError naming gamma unless it is a number >= 0."""
    raise NotImplementedError(f"bias_update: lower the bias of overloaded experts; {LESSON}")


def dispatch(x: Tensor, gates: Tensor, experts: Tensor,
             modules: Sequence[Callable[[Tensor], Tensor]]) -> Tensor:
    """x (N, D), gates and experts (N, top_k) -> (N, D): out[n] = sum over n's slots j of
    gates[n, j] * modules[experts[n, j]](x[n]). Each expert runs once, on the rows of the
    tokens that chose it and no others (gather), and its outputs times their gates are added
    back at those rows (scatter: index_add_)."""
    raise NotImplementedError(f"dispatch: per expert, gather its tokens, run, scatter back; "
                              f"{LESSON}")


# ---------------------------------------------------------------- the layer


class MoE(nn.Module):
    """A drop-in replacement for the SwiGLU MLP: router + n_expert SwiGLU experts.

    router: nn.Linear(n_embd, n_expert, bias=False); experts: an nn.ModuleList of
    SwiGLU(n_embd, hidden, dropout); expert_bias: a buffer of n_expert zeros (saved in the
    state dict, not a parameter). Keep n_expert, top_k, balance and bias_gamma as attributes.
    ValueError naming n_expert, top_k or balance when one is bad (balance: "aux" | "bias").
    """

    def __init__(self, n_embd: int, n_expert: int, top_k: int, hidden: int | None = None,
                 dropout: float = 0.0, balance: str = "aux", bias_gamma: float = 1e-3):
        super().__init__()
        raise NotImplementedError(f"MoE.__init__: router, experts, expert_bias; {LESSON}")

    def forward(self, x: Tensor) -> Tensor:
        """(..., n_embd) -> the same shape. Routes by router(x) + expert_bias, dispatches, and
        leaves on self: aux_loss and z_loss (0-d tensors with gradient) and load (f,
        detached). In training with balance="bias", then moves expert_bias by bias_update."""
        raise NotImplementedError(f"MoE.forward: route, losses, load, dispatch; {LESSON}")


# ---------------------------------------------------------------- the model


@dataclass
class MoEConfig(ModernConfig):
    """Kata 16's config with mlp="moe": every block's MLP is an MoE of n_expert SwiGLU experts
    of width mlp_hidden, top_k of them per token. balance="aux" adds aux_alpha * the Switch
    loss to the training loss; "bias" balances with DeepSeek's bias (step bias_gamma) instead.
    Both add z_alpha * the router z-loss. Given."""

    mlp: str = "moe"
    n_expert: int = 8
    top_k: int = 2
    balance: str = "aux"
    aux_alpha: float = 0.01
    z_alpha: float = 0.001
    bias_gamma: float = 0.001

    def __post_init__(self):
        if self.mlp != "moe":
            raise ValueError(f"MoEConfig.mlp is 'moe', got {self.mlp!r} (use a ModernConfig)")
        self.dense()  # ModernConfig checks every field it has
        if isinstance(self.n_expert, bool) or not isinstance(self.n_expert, int) \
                or self.n_expert < 1:
            raise ValueError(f"MoEConfig.n_expert must be a positive int, got {self.n_expert!r}")
        check_top_k(self.top_k, self.n_expert)
        if self.balance not in BALANCE:
            raise ValueError(f"MoEConfig.balance must be one of {BALANCE}, "
                             f"got {self.balance!r}")
        for name in ("aux_alpha", "z_alpha", "bias_gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"MoEConfig.{name} must be a number >= 0, got {value!r}")

    def dense(self) -> ModernConfig:
        """The same model with one SwiGLU per block (what kata 16 builds)."""
        same = {f.name: getattr(self, f.name) for f in fields(ModernConfig)}
        return ModernConfig(**{**same, "mlp": "swiglu"})


class MoEGPT(ModernGPT):
    """Kata 16's ModernGPT with each block's mlp an MoE. In training mode forward's loss is
    the cross-entropy plus the balancing terms; in eval mode the cross-entropy alone."""

    def __init__(self, config: MoEConfig):
        """ModernGPT.__init__(config.dense()), then self.config = config, then each block's
        mlp an MoE from the config (width mlp_hidden), then kata 16's init again, with every
        expert's w2 (a residual projection) at std 0.02 / sqrt(2 * n_layer)."""
        super().__init__(config.dense())
        raise NotImplementedError(f"MoEGPT.__init__: swap every block's mlp for an MoE; "
                                  f"{LESSON}")

    def moe_layers(self) -> list[MoE]:
        """Given."""
        return [block.mlp for block in self.transformer.h]

    def balance_loss(self) -> Tensor:
        """z_alpha * the mean z-loss over the layers, plus (balance="aux") aux_alpha * the mean
        aux loss over the layers: a 0-d tensor, from the last forward."""
        raise NotImplementedError(f"balance_loss: alphas times means over layers; {LESSON}")

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                kv_cache=None) -> tuple[Tensor, Tensor | None]:
        """ModernGPT.forward; with targets in training mode the loss also gets balance_loss()."""
        raise NotImplementedError(f"MoEGPT.forward: cross-entropy + balance_loss in training; "
                                  f"{LESSON}")

    def active_params(self) -> int:
        """Parameters one token uses: all of them but the n_expert - top_k experts per layer
        that it skips (an int)."""
        raise NotImplementedError(f"active_params: num_params minus the skipped experts; "
                                  f"{LESSON}")

    def expert_loads(self) -> Tensor:
        """(n_layer, n_expert): each layer's load f in the last forward. Given."""
        return torch.stack([m.load for m in self.moe_layers()])


# ---------------------------------------------------------------- given helpers


def moe_like(config: ModernConfig, n_expert: int = 8, top_k: int = 2, multiple_of: int = 8,
             **switches) -> MoEConfig:
    """The MoE with the active parameters of a dense modern config: its SwiGLU width split
    over the top_k experts a token uses (rounded to multiple_of). Given."""
    sizes = {k: v for k, v in asdict(config).items() if k != "mlp"}
    hidden = config.mlp_hidden or swiglu_hidden(config.n_embd)
    width = max(multiple_of, round(hidden / top_k / multiple_of) * multiple_of)
    return MoEConfig(**{**sizes, "mlp_hidden": width, "n_expert": n_expert, "top_k": top_k,
                        **switches})


def count_moe_params(config: MoEConfig) -> tuple[int, int]:
    """(active, total) parameters of MoEGPT(config), without allocating weights. Given."""
    with torch.device("meta"):
        model = MoEGPT(config)
        return model.active_params(), model.num_params()


def describe(config: ModernConfig) -> str:
    """describe() of kata 16, with the MoE named: 'rmsnorm, rope, moe 8x swiglu(176) top-2,
    ...'. Given."""
    if config.mlp != "moe":
        return describe_modern(config)
    dense = config.dense()
    swiglu = f"swiglu({dense.mlp_hidden or swiglu_hidden(dense.n_embd)})"
    balance = ", bias balancing" if config.balance == "bias" else ""
    moe = f"moe {config.n_expert}x {swiglu} top-{config.top_k}{balance}"
    return describe_modern(dense).replace(swiglu, moe, 1)
