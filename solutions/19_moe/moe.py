"""Kata 19: a sparse mixture of experts. A router sends each token to top_k of n_expert SwiGLU
MLPs; only those run, so a layer holds n_expert experts' weights but spends top_k experts'
work per token. Two ways to keep the experts evenly used: the Switch auxiliary loss, or
DeepSeek-V3's bias on the routing scores."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
from modern import ModernConfig, ModernGPT
from modern import describe as describe_modern
from swiglu import SwiGLU, swiglu_hidden
from torch import Tensor

BALANCE = ("aux", "bias")


def check_top_k(top_k, n_expert: int) -> None:
    """ValueError naming top_k and its value unless it is an int from 1 to n_expert. Given."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= n_expert:
        raise ValueError(f"top_k must be an int from 1 to n_expert={n_expert}, got {top_k!r}")


# ---------------------------------------------------------------- routing and its losses


def route(logits: Tensor, top_k: int, bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Router logits (..., E) -> (gates (..., top_k), experts (..., top_k) int64)."""
    check_top_k(top_k, logits.size(-1))
    scores = logits if bias is None else logits + bias  # the bias only picks the experts
    experts = scores.topk(top_k, dim=-1).indices
    gates = torch.softmax(logits.gather(-1, experts), dim=-1)  # over the k chosen, unbiased
    return gates, experts


def expert_load(experts: Tensor, n_expert: int) -> Tensor:
    """f: the fraction of all (token, slot) assignments that went to each expert; sums to 1."""
    counts = torch.bincount(experts.flatten(), minlength=n_expert)
    return counts / experts.numel()


def load_balancing_loss(logits: Tensor, experts: Tensor) -> Tensor:
    """The Switch Transformer loss E * sum_i f_i * P_i: 1 when routing is uniform."""
    n_expert = logits.size(-1)
    probs = torch.softmax(logits.reshape(-1, n_expert), dim=-1).mean(dim=0)  # P, over all E
    f = expert_load(experts, n_expert).to(probs.dtype)  # counts: no gradient flows through f
    return n_expert * (f * probs).sum()


def router_z_loss(logits: Tensor) -> Tensor:
    """ST-MoE's z-loss: the mean over tokens of logsumexp(logits)^2 (keeps logits small)."""
    return torch.logsumexp(logits, dim=-1).square().mean()


def bias_update(bias: Tensor, load: Tensor, gamma: float) -> Tensor:
    """DeepSeek-V3's step: an expert above the mean load gets a lower bias, one below a higher."""
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma >= 0:
        raise ValueError(f"gamma must be a number >= 0, got {gamma!r}")
    return bias - gamma * torch.sign(load - load.mean())


def dispatch(x: Tensor, gates: Tensor, experts: Tensor,
             modules: Sequence[Callable[[Tensor], Tensor]]) -> Tensor:
    """x (N, D): each expert runs on the rows routed to it only; the outputs, times their
    gates, are added back at those rows."""
    out = torch.zeros_like(x)
    for i, expert in enumerate(modules):
        token, slot = torch.where(experts == i)  # who chose expert i, and in which slot
        if token.numel() == 0:
            continue
        y = expert(x[token]) * gates[token, slot].unsqueeze(-1)
        out.index_add_(0, token, y.to(out.dtype))
    return out


# ---------------------------------------------------------------- the layer


class MoE(nn.Module):
    """A drop-in replacement for the SwiGLU MLP: router + n_expert SwiGLU experts.

    forward(x) keeps x's shape and leaves this batch's numbers on the module: aux_loss,
    z_loss (tensors with gradient) and load (f, detached). With balance="bias" a training
    forward also moves expert_bias one bias_update step.
    """

    def __init__(self, n_embd: int, n_expert: int, top_k: int, hidden: int | None = None,
                 dropout: float = 0.0, balance: str = "aux", bias_gamma: float = 1e-3):
        super().__init__()
        if isinstance(n_expert, bool) or not isinstance(n_expert, int) or n_expert < 1:
            raise ValueError(f"n_expert must be a positive int, got {n_expert!r}")
        check_top_k(top_k, n_expert)
        if balance not in BALANCE:
            raise ValueError(f"balance must be one of {BALANCE}, got {balance!r}")
        self.n_expert, self.top_k = n_expert, top_k
        self.balance, self.bias_gamma = balance, bias_gamma
        self.router = nn.Linear(n_embd, n_expert, bias=False)
        self.experts = nn.ModuleList(SwiGLU(n_embd, hidden, dropout) for _ in range(n_expert))
        self.register_buffer("expert_bias", torch.zeros(n_expert))  # saved in checkpoints
        self.aux_loss = self.z_loss = self.load = None

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.size(-1))  # every token of the batch, one row each
        logits = self.router(flat)
        gates, experts = route(logits, self.top_k, self.expert_bias)
        self.aux_loss = load_balancing_loss(logits, experts)
        self.z_loss = router_z_loss(logits)
        self.load = expert_load(experts, self.n_expert).detach()
        if self.training and self.balance == "bias":
            with torch.no_grad():
                self.expert_bias.copy_(bias_update(self.expert_bias, self.load, self.bias_gamma))
        return dispatch(flat, gates, experts, self.experts).reshape(x.shape)


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
        super().__init__(config.dense())
        self.config = config
        for block in self.transformer.h:
            block.mlp = MoE(config.n_embd, config.n_expert, config.top_k, config.mlp_hidden,
                            config.dropout, config.balance, config.bias_gamma)
        self._init_weights()
        for name, p in self.named_parameters():  # every expert's w2 writes to the residual
            if name.endswith(".w2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def moe_layers(self) -> list[MoE]:
        """Given."""
        return [block.mlp for block in self.transformer.h]

    def balance_loss(self) -> Tensor:
        """z_alpha * mean z-loss (+ aux_alpha * mean aux loss with balance="aux"), over layers,
        from the last forward."""
        layers, c = self.moe_layers(), self.config
        loss = c.z_alpha * torch.stack([m.z_loss for m in layers]).mean()
        if c.balance == "aux":
            loss = loss + c.aux_alpha * torch.stack([m.aux_loss for m in layers]).mean()
        return loss

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                kv_cache=None) -> tuple[Tensor, Tensor | None]:
        logits, loss = super().forward(idx, targets, kv_cache)
        if loss is not None and self.training:  # validation loss stays comparable to dense
            loss = loss + self.balance_loss()
        return logits, loss

    def active_params(self) -> int:
        """Parameters one token uses: all of them but the n_expert - top_k experts per layer
        that it skips."""
        c = self.config
        per_expert = sum(p.numel() for p in self.moe_layers()[0].experts[0].parameters())
        return self.num_params() - c.n_layer * (c.n_expert - c.top_k) * per_expert

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
