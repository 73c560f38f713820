"""Specs for kata 16. Oracles: kata 09's GPT (the reference for the GPT-2 switches), a
from-scratch float64 forward pass over the state dict written here for every switch (its own
LayerNorm, RMSNorm, adjacent-pair RoPE, repeated key/value heads, window mask, GELU and
SwiGLU), parameter counts in closed form, and greedy generation by recomputing everything."""

import math
from dataclasses import replace
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from gpt import GPT, GPTConfig
from gpt import PRESETS as GPT2_PRESETS
from gqa import StaticKVCache
from hypothesis import given, settings
from hypothesis import strategies as st
from modern import (
    PRESETS,
    Block,
    ModernConfig,
    ModernGPT,
    generate,
    matched_mlp_hidden,
    modern_like,
    new_cache,
)

from harness.checks import expect, expect_close, on_meta

SIZES = dict(vocab_size=11, block_size=12, n_layer=2, n_head=4, n_embd=16)
GPT2 = ModernConfig.gpt2(**SIZES)
# One part at a time, from GPT-2's value to the modern one.
SWITCHES = {"norm": {"norm": "rmsnorm"}, "positions": {"positions": "rope"},
            "mlp": {"mlp": "swiglu", "mlp_hidden": 24}, "n_kv_head": {"n_kv_head": 2},
            "n_kv_head=1 (MQA)": {"n_kv_head": 1}, "window": {"window": 3},
            "qk_norm": {"qk_norm": True}}


def make_model(config, seed=0):
    torch.manual_seed(seed)
    return ModernGPT(config).double()


def random_ids(config, batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (batch, length), generator=g)


def switches(config) -> str:
    return (f"norm={config.norm}, positions={config.positions}, mlp={config.mlp}, "
            f"n_kv_head={config.n_kv_head}, window={config.window}, qk_norm={config.qk_norm}")


# --- the oracle: the whole forward pass from the state dict, in float64 ---


def oracle_logits(state: dict, c: ModernConfig, idx: torch.Tensor) -> torch.Tensor:
    sd = {k: v.double() for k, v in state.items()}

    def weight(name):
        if name not in sd:
            raise AssertionError(f"the state dict has no {name!r} (it has {sorted(sd)[:8]}...); "
                                 f"the model with {switches(c)} needs one")
        return sd[name]

    def linear(x, name):
        y = x @ weight(name + ".weight").T
        return y + sd[name + ".bias"] if name + ".bias" in sd else y

    def rms(x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w

    def norm(x, name):
        if c.norm == "rmsnorm":
            return rms(x, weight(name + ".weight"))
        centred = x - x.mean(-1, keepdim=True)
        y = centred / torch.sqrt((centred * centred).mean(-1, keepdim=True) + 1e-5)
        return y * weight(name + ".weight") + sd.get(name + ".bias", 0.0)

    B, T = idx.shape
    C, H, KV = c.n_embd, c.n_head, c.n_kv_head or c.n_head
    hd = C // H
    pos = torch.arange(T, dtype=torch.float64)

    def rope(t):  # adjacent pairs (2i, 2i+1) turned by pos * base^(-2i/hd)
        theta = c.rope_base ** (-2 * torch.arange(hd // 2, dtype=torch.float64) / hd)
        cos, sin = (pos[:, None] * theta).cos(), (pos[:, None] * theta).sin()
        a, b = t[..., 0::2], t[..., 1::2]
        out = torch.empty_like(t)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out

    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    seen = (j <= i) & ((j > i - c.window) if c.window else True)
    x = weight("transformer.wte.weight")[idx]
    if c.positions == "learned":
        x = x + weight("transformer.wpe.weight")[:T]
    for layer in range(c.n_layer):
        p = f"transformer.h.{layer}."
        q, k, v = linear(norm(x, p + "ln_1"), p + "attn.c_attn").split([C, KV * hd, KV * hd], -1)
        q = q.view(B, T, H, hd).transpose(1, 2)
        k, v = (t.view(B, T, KV, hd).transpose(1, 2) for t in (k, v))
        if c.qk_norm:
            q = rms(q, weight(p + "attn.q_norm.weight"))
            k = rms(k, weight(p + "attn.k_norm.weight"))
        if c.positions == "rope":
            q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        scores = (q @ k.transpose(-2, -1) / math.sqrt(hd)).masked_fill(~seen, float("-inf"))
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + linear(y, p + "attn.c_proj")
        h = norm(x, p + "ln_2")
        if c.mlp == "gelu":
            x = x + linear(F.gelu(linear(h, p + "mlp.c_fc")), p + "mlp.c_proj")
        else:
            gate, up = h @ weight(p + "mlp.w1.weight").T, h @ weight(p + "mlp.w3.weight").T
            x = x + (gate * torch.sigmoid(gate) * up) @ weight(p + "mlp.w2.weight").T
    return norm(x, "transformer.ln_f") @ weight("transformer.wte.weight").T


def expect_oracle_logits(config, seed=0, batch=2, length=9, hint=""):
    model = make_model(config, seed)
    with torch.no_grad():  # give the gains non-trivial values, so each one matters
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.normal_(1.0, 0.3) if name.endswith("weight") else p.normal_(0.0, 0.3)
    idx = random_ids(config, batch, length, seed)
    got, _ = model(idx)
    want = oracle_logits(model.state_dict(), config, idx)
    expect(tuple(got.shape) == tuple(want.shape),
           f"logits shape: expected {tuple(want.shape)}, got {tuple(got.shape)}")
    expect_close(got, want, f"logits with {switches(config)}", rel=1e-7, abs=1e-9,
                 hint=hint or "each switch picks one part; see the lesson's table")


# --- with every switch at GPT-2's value it is kata 09's model ---


@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
def test_gpt2_switches_are_kata_09s_model(bias):
    torch.manual_seed(1)
    reference = GPT(GPTConfig(**SIZES, bias=bias)).double()
    model = ModernGPT(replace(GPT2, bias=bias)).double()
    mine, theirs = set(model.state_dict()), set(reference.state_dict())
    expect(mine == theirs,
           f"state-dict names differ from kata 09's GPT.\n  missing: {sorted(theirs - mine)}\n"
           f"  unexpected: {sorted(mine - theirs)}",
           hint="keep kata 09's names: transformer.{wte, wpe, h, ln_f}, ln_1, attn (c_attn, "
                "c_proj), ln_2, mlp (c_fc, c_proj), lm_head; wpe only with learned positions")
    model.load_state_dict(reference.state_dict(), strict=True)
    idx = random_ids(GPT2, 3, GPT2.block_size, seed=2)
    targets = random_ids(GPT2, 3, GPT2.block_size, seed=3)
    got, loss = model(idx, targets)
    want, want_loss = reference(idx, targets)
    expect_close(got, want, "logits against kata 09's GPT on the same weights", rel=1e-9,
                 hint="GPT-2's switches: LayerNorm (with bias when bias=True), wpe added to wte, "
                      "GELU MLP (kata 09's MLP), n_kv_head = n_head, no window, no QK-norm; "
                      "and kata 09's pre-norm block: x = x + attn(ln_1(x)), then "
                      "x = x + mlp(ln_2(x)) (the norm inside each branch, not after the sum)")
    expect_close(loss, want_loss, "loss against kata 09's GPT", rel=1e-9,
                 hint="F.cross_entropy over (B*T, vocab) logits and (B*T,) targets")


@pytest.mark.parametrize("switch", list(SWITCHES))
def test_each_switch_changes_its_part_and_only_it(switch):
    config = replace(GPT2, **SWITCHES[switch])
    expect_oracle_logits(config, hint=f"only {switch} differs from GPT-2 here: is the switch "
                                      "read, and does it pick the right part? (When "
                                      "test_gpt2_switches_are_kata_09s_model fails too, fix the "
                                      "block first: pre-norm, x = x + attn(ln_1(x)))")


@settings(max_examples=25)
@given(norm=st.sampled_from(["layernorm", "rmsnorm"]),
       positions=st.sampled_from(["learned", "rope"]), mlp=st.sampled_from(["gelu", "swiglu"]),
       n_kv_head=st.sampled_from([None, 1, 2, 4]),
       window=st.sampled_from([None, 1, 4]), qk_norm=st.booleans(), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_any_combination_of_switches_matches_the_oracle(norm, positions, mlp, n_kv_head, window,
                                                         qk_norm, bias, seed):
    config = replace(GPT2, norm=norm, positions=positions, mlp=mlp, n_kv_head=n_kv_head,
                     window=window, qk_norm=qk_norm, bias=bias)
    expect_oracle_logits(config, seed=seed)


def test_rope_base_reaches_every_attention():
    expect_oracle_logits(replace(ModernConfig(**SIZES), rope_base=50.0),
                         hint="pass config.rope_base to each GroupedQueryAttention")


def test_dropout_reaches_the_attention_and_the_mlp():
    for mlp in ("swiglu", "gelu"):
        config = replace(ModernConfig(**SIZES), mlp=mlp, dropout=0.5)
        block = make_model(config).train().transformer.h[0]
        x = torch.randn(2, 5, config.n_embd, dtype=torch.float64)
        for part in ("attn", "mlp"):
            module = getattr(block, part)
            expect(not torch.equal(module(x), module(x)),
                   f"with dropout=0.5 (mlp={mlp}), two calls of transformer.h[0].{part} in "
                   "train() mode gave the same output",
                   hint="pass config.dropout to the attention and to the MLP")


def test_a_block_alone_uses_layer_0_of_its_cache():
    config = ModernConfig(**SIZES)
    torch.manual_seed(0)
    block = Block(config).double().eval()
    x = torch.randn(2, 5, config.n_embd, dtype=torch.float64)
    cache = StaticKVCache(1, 2, config.kv_heads, config.n_embd // config.n_head,
                          config.block_size, dtype=torch.float64)
    positions = torch.arange(5)
    try:
        got = block(x, positions, cache)
    except (IndexError, ValueError) as err:
        pytest.fail(f"Block(x, positions, a one-layer cache) raised {err!r}; layer defaults to "
                    "0", pytrace=False)
    expect_close(got, block(x, positions), "a block through a fresh cache vs without one",
                 rel=1e-9, abs=1e-12, hint="layer=0 by default; pass layer on to the attention")


def test_idx_must_be_a_batch_of_token_rows():
    model = make_model(ModernConfig(**SIZES))
    _, loss = model(random_ids(GPT2, 2, 4, seed=0))
    expect(loss is None, f"without targets the loss is {loss!r}, expected None",
           hint="compute the loss only when targets are given")
    for shape in ((5,), (2, 0)):
        with pytest.raises(ValueError) as info:
            model(torch.zeros(shape, dtype=torch.long))
        expect(str(shape[-1]) in str(info.value), f"idx of shape {shape} raised "
               f"ValueError({str(info.value)!r}), which does not give the shape",
               hint="e.g. 'idx must be (batch, time) token ids with at least one token, got "
                    "shape (5,)'")


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_the_model_runs_on_the_device_of_its_weights(positions):
    config = replace(ModernConfig(**SIZES), positions=positions, window=4)
    with torch.device("meta"):  # the meta device stands in for a GPU (see on_meta)
        model = ModernGPT(config)
    idx = torch.zeros(2, 3, dtype=torch.long, device="meta")
    hint = ("make positions with device=idx.device, and the cache on the model's device "
            "(new_cache: the device of its weights)")
    cache = on_meta("new_cache of a ModernGPT", partial(new_cache, model, 2), hint)
    for part in (idx, idx[:, :1]):
        on_meta(f"a ModernGPT ({positions} positions) on {part.shape[1]} tokens through "
                "new_cache's cache", partial(model, part, kv_cache=cache), hint)


def test_rope_drops_wpe_and_rmsnorm_has_no_bias():
    names = set(make_model(replace(GPT2, positions="rope", norm="rmsnorm", bias=True))
                .state_dict())
    expect("transformer.wpe.weight" not in names,
           "positions='rope' but the model still has transformer.wpe",
           hint="with RoPE the attention knows positions; wpe is gone (and with it the "
                "block_size limit of the position table)")
    norm_biases = sorted(n for n in names if ("ln_" in n) and n.endswith("bias"))
    expect(not norm_biases, f"RMSNorm has a gain only, but found {norm_biases}",
           hint="RMSNorm (kata 13) for every norm when norm='rmsnorm', ln_f included")


# --- init, size and parity ---


def test_init_scales_every_residual_projection():
    config = ModernConfig(vocab_size=64, block_size=16, n_layer=4, n_head=4, n_embd=128,
                          mlp_hidden=512)
    model = make_model(config, seed=3)
    residual = 0.02 / math.sqrt(2 * config.n_layer)
    for name, p in model.named_parameters():
        if name.endswith(("attn.c_proj.weight", "mlp.w2.weight")):
            want = residual
        elif p.dim() == 2:
            want = 0.02
        else:
            expect(bool((p == 1).all()), f"{name} should start at 1 (a norm gain), got "
                   f"{p.flatten()[:4].tolist()}")
            continue
        expect_close(p.std().item(), want, f"std of {name}", rel=0.1,
                     hint="kata 09's init: normal(0, 0.02), and 0.02 / sqrt(2 * n_layer) for the "
                          "projections that add into the residual stream: attention's c_proj "
                          "AND the MLP's down projection (c_proj for GELU, w2 for SwiGLU)")
        expect(abs(p.mean().item()) < 0.1 * want, f"mean of {name} is {p.mean().item():.4g}, "
               "expected about 0", hint="normal_(p, mean=0.0, std=...): centred on zero")
    expect(model.lm_head.weight is model.transformer.wte.weight,
           "lm_head.weight is not transformer.wte.weight", hint="tie them as in kata 09")
    biased = make_model(replace(GPT2, bias=True), seed=3)
    nonzero = [n for n, p in biased.named_parameters() if n.endswith("bias") and p.any()]
    expect(not nonzero, f"with bias=True these biases do not start at 0: {nonzero}",
           hint="kata 09's init: every bias starts at 0 (nn.Linear starts them uniform)")


def closed_form_count(c: ModernConfig) -> int:
    """Parameters worked out by hand. Per layer: c_attn C*(C + 2*kv*hd) + c_proj C*C; GELU
    MLP 8*C*C or SwiGLU 3*C*hidden; two norm gains (and LayerNorm biases); QK-norm 2*hd."""
    C, L, V, hd = c.n_embd, c.n_layer, c.vocab_size, c.n_embd // c.n_head
    kv = c.n_kv_head or c.n_head
    hidden = c.mlp_hidden or -(-8 * C // 3 // 64) * 64
    attn = C * (C + 2 * kv * hd) + C * C + ((C + 2 * kv * hd) + C if c.bias else 0)
    if c.mlp == "gelu":
        mlp = 8 * C * C + (4 * C + C if c.bias else 0)
    else:
        mlp = 3 * C * hidden
    norms = 2 * C * (2 if c.norm == "layernorm" and c.bias else 1)
    per_layer = attn + mlp + norms + (2 * hd if c.qk_norm else 0)
    final = C * (2 if c.norm == "layernorm" and c.bias else 1)
    return V * C + (c.block_size * C if c.positions == "learned" else 0) + L * per_layer + final


@pytest.mark.parametrize("changes", [{}, {"n_kv_head": 1}, {"qk_norm": True},
                                     {"mlp": "gelu", "bias": True, "norm": "layernorm"},
                                     {"positions": "learned", "mlp_hidden": 40}],
                         ids=["modern", "MQA", "qk_norm", "gelu+bias", "learned"])
def test_num_params_counts_each_part(changes):
    config = replace(ModernConfig(**SIZES), **changes)
    expect_close(make_model(config).num_params(), closed_form_count(config),
                 f"num_params() with {switches(config)}", rel=0,
                 hint="the tied wte / lm_head counts once; no wpe with RoPE; SwiGLU is three "
                      "n_embd x hidden matrices; GQA's c_attn makes n_embd + 2*n_kv_head*head_dim")


@pytest.mark.parametrize("changes", [{}, {"positions": "learned", "mlp": "gelu"}],
                         ids=["modern", "gpt2"])
def test_num_params_counts_on_the_meta_device_too(changes):
    # count_params builds the model on the meta device (no memory for the weights): there
    # every tensor has data_ptr() 0, so a count that tells tensors apart by address is wrong.
    config = replace(ModernConfig(**SIZES), **changes)
    with torch.device("meta"):
        model = ModernGPT(config)
    expect_close(model.num_params(), closed_form_count(config),
                 f"num_params() of a model built on the meta device, {switches(config)}", rel=0,
                 hint="sum(p.numel() for p in self.parameters()): parameters() already yields "
                      "the tied wte / lm_head weight once; never tell tensors apart by "
                      "data_ptr(), which is 0 for every tensor on the meta device")


@pytest.mark.parametrize("name", ["tiny", "small", "medium"])
def test_presets_have_the_parameters_of_gpt2_within_2_percent(name):
    config = PRESETS[name]
    expect(config.norm == "rmsnorm" and config.positions == "rope" and config.mlp == "swiglu",
           f"PRESETS[{name!r}] is not the modern model: {switches(config)}")
    gpt2 = GPT(GPT2_PRESETS[name]).num_params()
    got = make_model(config).num_params()
    expect(abs(got - gpt2) <= 0.02 * gpt2,
           f"PRESETS[{name!r}] has {got:,} parameters, GPT-2's {name} {gpt2:,} "
           f"({(got - gpt2) / gpt2:+.2%}); the comparison needs them within 2%",
           hint="choose mlp_hidden with matched_mlp_hidden")


@pytest.mark.parametrize("sizes", [dict(n_layer=4, n_head=4, n_embd=128, block_size=64),
                                   dict(n_layer=2, n_head=2, n_embd=128, block_size=128),
                                   dict(n_layer=6, n_head=6, n_embd=384, block_size=256),
                                   dict(n_layer=3, n_head=3, n_embd=96, block_size=32)],
                         ids=["cpu", "tiny", "medium", "odd heads"])
def test_matched_mlp_hidden_gives_the_closest_multiple(sizes):
    config = ModernConfig(vocab_size=65, **sizes, n_kv_head=1)
    target = closed_form_count(ModernConfig.gpt2(vocab_size=65, **sizes))
    hidden = matched_mlp_hidden(config, target, multiple_of=16)
    expect(isinstance(hidden, int) and hidden >= 16 and hidden % 16 == 0,
           f"matched_mlp_hidden(..., multiple_of=16) = {hidden!r}: not a positive multiple of 16")

    def miss(h):
        return abs(closed_form_count(replace(config, mlp_hidden=h)) - target)

    expect(miss(hidden) <= min(miss(hidden - 16), miss(hidden + 16)),
           f"hidden={hidden} misses the target {target:,} by {miss(hidden):,}; hidden-16 misses "
           f"by {miss(hidden - 16):,}, hidden+16 by {miss(hidden + 16):,}",
           hint="each unit of width adds 3 * n_embd * n_layer parameters: solve for the width, "
                "then round to the NEAREST multiple")
    for what, got in (("the default multiple_of (16)", matched_mlp_hidden(config, target)),
                      ("a config with mlp='gelu'",
                       matched_mlp_hidden(replace(config, mlp="gelu"), target, 16))):
        expect(got == hidden, f"matched_mlp_hidden with {what} gave {got}, expected {hidden}",
               hint="multiple_of defaults to 16, and the count is that of the config with "
                    "mlp='swiglu' whatever its mlp is now")
    small = matched_mlp_hidden(config, 0, multiple_of=16)
    expect(small == 16, f"matched_mlp_hidden(..., target=0, multiple_of=16) = {small}, expected "
           "16", hint="the width is at least one multiple: max(1, ...) multiples")


@pytest.mark.parametrize("name", ["tiny", "small", "medium"])
def test_modern_like_is_the_modern_model_at_gpt2s_size(name):
    gpt2 = GPT2_PRESETS[name]
    config = modern_like(gpt2)
    expect(isinstance(config, ModernConfig) and (config.norm, config.positions, config.mlp)
           == ("rmsnorm", "rope", "swiglu") and config.window == gpt2.block_size
           and config.kv_heads < config.n_head,
           f"modern_like({name}) = {config}",
           hint="RMSNorm, RoPE, SwiGLU, fewer key/value heads than query heads, window = "
                "block_size")
    expect((config.n_layer, config.n_head, config.n_embd, config.block_size)
           == (gpt2.n_layer, gpt2.n_head, gpt2.n_embd, gpt2.block_size),
           f"modern_like changed the sizes: {config}")
    want = GPT(gpt2).num_params()
    got = closed_form_count(config)
    expect(abs(got - want) <= 0.02 * want,
           f"modern_like({name}) has {got:,} parameters against GPT-2's {want:,}",
           hint="mlp_hidden from matched_mlp_hidden")
    preset = PRESETS[name]
    expect((config.n_kv_head, config.window, config.mlp_hidden)
           == (preset.n_kv_head, preset.window, preset.mlp_hidden),
           f"modern_like({name}): n_kv_head, window, mlp_hidden = {config.n_kv_head}, "
           f"{config.window}, {config.mlp_hidden}; PRESETS[{name!r}] has {preset.n_kv_head}, "
           f"{preset.window}, {preset.mlp_hidden}",
           hint="n_head // 2 key/value heads, window = block_size, and matched_mlp_hidden with "
                "multiple_of=16")
    wide = modern_like(gpt2, multiple_of=64).mlp_hidden
    expect(wide % 64 == 0 and abs(wide - config.mlp_hidden) <= 32,
           f"modern_like({name}, multiple_of=64).mlp_hidden = {wide}, expected the multiple of 64 "
           f"nearest the matched width (about {config.mlp_hidden})",
           hint="pass multiple_of on to matched_mlp_hidden")


def test_modern_like_keeps_what_it_is_told():
    gpt2 = GPTConfig(vocab_size=65, block_size=32, n_layer=3, n_head=3, n_embd=96)
    odd = modern_like(gpt2)
    expect(odd.kv_heads == 3, f"modern_like with n_head=3 gave {odd.kv_heads} key/value heads",
           hint="n_head // 2 key/value heads when n_head is even, n_head when it is odd")
    gelu = modern_like(gpt2, mlp="gelu")
    expect(gelu.mlp == "gelu" and gelu.mlp_hidden is None,
           f"modern_like(..., mlp='gelu') gave mlp={gelu.mlp!r}, mlp_hidden={gelu.mlp_hidden}",
           hint="a GELU MLP has no SwiGLU width to match: keep mlp_hidden as given (None)")
    fixed = modern_like(gpt2, mlp_hidden=100)
    expect(fixed.mlp_hidden == 100, f"modern_like(..., mlp_hidden=100) gave mlp_hidden="
           f"{fixed.mlp_hidden}", hint="an explicit mlp_hidden is kept as given")


# --- generation with the static cache ---


def greedy_by_recomputation(model, idx, steps):
    """Temperature 0 with no cache: the whole context every step (cropped to block_size
    unless the model rolls)."""
    c = model.config
    rolling = c.positions == "rope" and c.window is not None
    with torch.no_grad():
        for _ in range(steps):
            context = idx if rolling else idx[:, -c.block_size:]
            idx = torch.cat([idx, model(context)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


# A window of 8 over 2 layers reaches 2 * 7 = 14 tokens back, past block_size = 12: cropping a
# rolling model's context changes its tokens.
@pytest.mark.parametrize("changes", [{}, {"window": 8}, {"window": 4, "n_kv_head": 1},
                                     {"positions": "learned"},
                                     {"positions": "learned", "window": 4}],
                         ids=["rope", "rope+window (rolling)", "rolling MQA", "learned",
                              "learned+window"])
def test_cached_generation_gives_the_tokens_of_recomputation(changes):
    config = replace(ModernConfig(**SIZES), **changes)
    model = make_model(config, seed=4)
    with torch.no_grad():  # bigger weights: sharp attention, so every context token counts
        for p in model.parameters():
            p.mul_(15 if p.dim() == 2 else 1)
    prompt = random_ids(config, 2, 5, seed=5)
    steps = 2 * config.block_size + 3  # past block_size: a restart, or the rolling buffer
    rolling = config.window is not None and config.positions == "rope"
    want = greedy_by_recomputation(model, prompt, steps)
    got = generate(model, prompt, steps, temperature=0.0)
    expect(tuple(got.shape) == tuple(want.shape),
           f"generate(..., {steps}) returned shape {tuple(got.shape)}, expected "
           f"{tuple(want.shape)}")
    expect(torch.equal(got, want),
           f"greedy tokens with the cache differ from recomputing everything ({switches(config)})"
           f"\n  expected {want[0, 5:25].tolist()}...\n  got      {got[0, 5:25].tolist()}...",
           hint="a rolling model (rope + window) never crops and keeps one cache; otherwise start "
                "a new cache from the last block_size tokens when it is full"
                if rolling else "when the cache is full, restart it from idx[:, -block_size:]")
    recomputed = generate(model, prompt, steps, temperature=0.0, use_cache=False)
    expect(torch.equal(recomputed, want),
           f"greedy tokens with use_cache=False differ from recomputing everything "
           f"({switches(config)})", hint="a rolling model reads its whole context, uncropped"
           if rolling else "crop the context to its last block_size tokens")
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    sampled = generate(model, prompt, steps, temperature=1.0, generator=g1)
    without = generate(model, prompt, steps, temperature=1.0, generator=g2, use_cache=False)
    expect(torch.equal(sampled, without), "sampled tokens differ between use_cache=True and "
           "use_cache=False at the same seed", hint="draw with sample_next(..., generator)")


def test_the_rolling_cache_holds_window_slots_whatever_the_length():
    config = replace(ModernConfig(**SIZES), window=4, n_kv_head=2)
    model = make_model(config)
    cache = new_cache(model, batch_size=3)
    hd = config.n_embd // config.n_head
    want = 2 * config.n_layer * 3 * 2 * config.window * hd * 8  # k and v, float64
    expect(cache.nbytes() == want,
           f"new_cache: {cache.nbytes()} bytes, expected {want} (2 x n_layer x batch x "
           f"n_kv_head x window x head_dim x 8 bytes)",
           hint="StaticKVCache(n_layer, batch, n_kv_head, head_dim, max_len=block_size, "
                "window=config.window) in the model's dtype")
    idx = random_ids(config, 3, 2, seed=1)
    with torch.no_grad():
        model(idx, kv_cache=cache)
        for _ in range(3 * config.block_size):
            model(idx[:, -1:], kv_cache=cache)
    expect(len(cache) == 2 + 3 * config.block_size and cache.nbytes() == want,
           f"after {len(cache)} positions the cache holds {cache.nbytes()} bytes, "
           f"expected still {want}")


@pytest.mark.parametrize("changes,rolls", [({}, False), ({"positions": "learned"}, False),
                                           ({"positions": "learned", "window": 4}, False),
                                           ({"window": 4}, True)],
                         ids=["rope, no window", "learned", "learned+window", "rope+window"])
def test_only_a_rolling_model_reads_past_block_size(changes, rolls):
    config = replace(ModernConfig(**SIZES), **changes)
    model = make_model(config)
    idx = random_ids(config, 1, config.block_size + 5, seed=0)
    if rolls:
        logits, _ = model(idx)
        expect(tuple(logits.shape) == (1, config.block_size + 5, config.vocab_size),
               f"logits shape {tuple(logits.shape)}")
        return
    cache = new_cache(model, 1)
    model(idx[:, :config.block_size], kv_cache=cache)  # a full cache: one more is too many
    for what, call in [(f"{config.block_size + 5} tokens", lambda: model(idx)),
                       (f"one token after {config.block_size} cached positions",
                        lambda: model(idx[:, -1:], kv_cache=cache))]:
        try:
            call()
        except ValueError as err:
            expect("block_size" in str(err), f"{what} with {switches(config)} raised "
                   f"ValueError({str(err)!r}), which does not name block_size",
                   hint="say that block_size is the limit, and to crop to idx[:, -block_size:]")
            continue
        except Exception as err:
            raise AssertionError(
                f"{what} with {switches(config)} raised {type(err).__name__}: {err}; expected "
                "a ValueError naming block_size\n  hint: only a model with RoPE AND a window "
                "(config.rolling) reads past block_size; learned positions have no embedding "
                "for position block_size, window or not") from err
        raise AssertionError(f"{what} with {switches(config)} raised no error; expected a "
                             "ValueError naming block_size\n  hint: check start + T against "
                             "block_size unless config.rolling")


def test_generate_leaves_the_model_in_its_mode():
    model = make_model(replace(ModernConfig(**SIZES), window=4)).train()
    generate(model, random_ids(GPT2, 1, 3, seed=0), 4, temperature=0.0)
    expect(model.training, "generate left the model in eval mode",
           hint="model.train(was_training) in a finally")
