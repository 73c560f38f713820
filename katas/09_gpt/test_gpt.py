"""Specs for kata 09. Oracles: parameter counts worked out by hand (closed forms below), a
from-scratch float64 forward pass over the state dict written here without nn.Module, and
torch's own cross-entropy."""

import math
from dataclasses import replace
from functools import partial

import gpt
import pytest
import torch
import torch.nn.functional as F
from gpt import GPT, PRESETS, GPTConfig, KVCache, causal_mask
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.overrides import TorchFunctionMode

from harness.checks import expect, expect_close, on_meta

SMALL = GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=16)


def make_model(config=SMALL, seed=0, dtype=torch.float64, **changes):
    torch.manual_seed(seed)
    return GPT(replace(config, **changes)).to(dtype)


def random_ids(config, batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (batch, length), generator=g)


# --- the causal mask, offset for a KV cache ---


def test_causal_mask_without_a_cache_is_lower_triangular():
    got = causal_mask(4, 4)
    want = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    expect(got.dtype == torch.bool and got.tolist() == want.tolist(),
           f"causal_mask(4, 4):\n  expected {want.int().tolist()}\n  got      {got.int().tolist()}",
           hint="True where key j <= query i: each position sees itself and everything before "
                "(torch.ones(...).tril())")


def test_causal_mask_with_cached_keys_is_shifted():
    # 2 new queries after 3 cached keys: they sit at positions 3 and 4.
    got = causal_mask(2, 5)
    want = [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    expect(got.int().tolist() == want,
           f"causal_mask(2, 5):\n  expected {want}\n  got      {got.int().tolist()}",
           hint="query i sits at position n_key - n_query + i; use tril(diagonal=n_key - n_query)")
    one = causal_mask(1, 7)
    expect(bool(one.all()), f"causal_mask(1, 7) must be all True, got {one.int().tolist()}",
           hint="the newest token may look at every cached position and at itself")


# --- names, shapes, tying, sizes ---


def expected_keys(n_layer, bias):
    """nanoGPT's state-dict names, with the (out, in) shapes of nn.Linear, for SMALL's sizes."""
    V, T, C = SMALL.vocab_size, SMALL.block_size, SMALL.n_embd
    keys = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C),
            "transformer.ln_f.weight": (C,), "lm_head.weight": (V, C)}
    per_layer = {"ln_1.weight": (C,), "attn.c_attn.weight": (3 * C, C),
                 "attn.c_proj.weight": (C, C), "ln_2.weight": (C,),
                 "mlp.c_fc.weight": (4 * C, C), "mlp.c_proj.weight": (C, 4 * C)}
    if bias:
        keys["transformer.ln_f.bias"] = (C,)
        per_layer |= {"ln_1.bias": (C,), "attn.c_attn.bias": (3 * C,), "attn.c_proj.bias": (C,),
                      "ln_2.bias": (C,), "mlp.c_fc.bias": (4 * C,), "mlp.c_proj.bias": (C,)}
    for i in range(n_layer):
        keys |= {f"transformer.h.{i}.{name}": shape for name, shape in per_layer.items()}
    return keys


@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
def test_state_dict_uses_the_gpt2_names_and_shapes(bias):
    model = make_model(bias=bias)
    got = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    want = expected_keys(SMALL.n_layer, bias)
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    expect(not missing and not extra,
           f"state-dict names differ from GPT-2 / nanoGPT's.\n  missing: {missing}\n"
           f"  unexpected: {extra}",
           hint="name the submodules transformer.{wte, wpe, h, ln_f}, each block ln_1, attn "
                "(c_attn, c_proj), ln_2, mlp (c_fc, c_proj), and lm_head; keep a mask out of "
                "the state dict (build it in forward, or register_buffer(..., persistent=False))")
    wrong = {name: (got[name], shape) for name, shape in want.items() if got[name] != shape}
    expect(not wrong, f"shapes (got, expected): {wrong}",
           hint="nn.Linear(in, out).weight has shape (out, in); c_attn makes q, k and v: 3*n_embd")


def test_lm_head_is_tied_to_wte_as_one_tensor():
    model = make_model()
    expect(model.lm_head.weight is model.transformer.wte.weight,
           "lm_head.weight and transformer.wte.weight are two different tensors",
           hint="tie by assignment, self.lm_head.weight = self.transformer.wte.weight; copying "
                "the values makes two tensors that drift apart in training")
    state = model.state_dict()
    expect(state["lm_head.weight"].data_ptr() == state["transformer.wte.weight"].data_ptr(),
           "the state dict's lm_head.weight and transformer.wte.weight do not share storage")


def expected_param_count(config, include_wpe=True):
    """Counted by hand from the architecture, not from a model.

    wte: V*C (lm_head shares it, so it counts once); wpe: block_size*C.
    Each layer: c_attn 3C*C + attn.c_proj C*C + c_fc 4C*C + mlp.c_proj 4C*C = 12*C*C weights,
    and the gains of ln_1 and ln_2, 2C. With biases: c_attn 3C, attn.c_proj C, c_fc 4C,
    mlp.c_proj C, ln_1 C, ln_2 C = 11C more. Final LayerNorm: C (+ C bias).
    """
    V, T, L, C = config.vocab_size, config.block_size, config.n_layer, config.n_embd
    per_layer = 12 * C * C + 2 * C + (11 * C if config.bias else 0)
    total = V * C + L * per_layer + C + (C if config.bias else 0)
    return total + (T * C if include_wpe else 0)


@pytest.mark.parametrize("name,layers,heads,width", [
    ("tiny", 2, 2, 128), ("small", 4, 4, 256), ("medium", 6, 6, 384)])
def test_preset_parameter_counts(name, layers, heads, width):
    config = PRESETS[name]
    expect((config.n_layer, config.n_head, config.n_embd, config.vocab_size, config.block_size)
           == (layers, heads, width, 65, 256),
           f"PRESETS[{name!r}] is {config}", hint=f"{name} is {layers}L/{heads}H/{width}D")
    model = GPT(config)  # medium takes ~0.1 s to build; torch.device("meta") costs more here
    for include_wpe in (True, False):
        expect_close(model.num_params(include_wpe=include_wpe),
                     expected_param_count(config, include_wpe),
                     f"{name}.num_params(include_wpe={include_wpe})",
                     hint="count the tied wte / lm_head weight once (sum over model.parameters() "
                          "does); include_wpe=False leaves out block_size * n_embd", rel=0)


def test_medium_has_10_75m_parameters():
    model = GPT(PRESETS["medium"])
    # 6L/6H/384D, block 256, vocab 65: 10,646,784 without wpe and 10,745,088 with it.
    expect_close(model.num_params(include_wpe=False), 10_646_784, "medium without wpe (~10.65M)",
                 rel=0)
    expect_close(model.num_params(), 10_745_088, "medium with wpe (~10.75M)", rel=0)


def test_biases_add_eleven_per_layer_width_plus_one():
    config = replace(SMALL, bias=True)
    expect_close(make_model(config).num_params(), expected_param_count(config),
                 "num_params with bias=True", rel=0,
                 hint="bias=True: a bias on every Linear except lm_head, and on every LayerNorm")


# --- initialisation ---


def test_gpt2_initialisation():
    config = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=True)
    model = make_model(config, dtype=torch.float32)
    residual_std = 0.02 / math.sqrt(2 * config.n_layer)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            expect_close(p.std().item(), residual_std, f"std of {name}", rel=0.1,
                         hint="residual projections (attn.c_proj and mlp.c_proj) start at "
                              "std 0.02 / sqrt(2 * n_layer)")
        elif p.dim() == 2:
            expect_close(p.std().item(), 0.02, f"std of {name}", rel=0.1,
                         hint="embeddings and Linear weights start as normal(0, 0.02)")
        elif name.endswith("bias"):
            expect(bool((p == 0).all()), f"{name} does not start at 0",
                   hint="nn.Linear initialises its bias uniformly; set biases to zero")
        else:
            expect(bool((p == 1).all()), f"the LayerNorm gain {name} does not start at 1")
        if p.dim() == 2:
            expect(abs(p.mean().item()) < 0.002, f"mean of {name} is {p.mean().item():.4g}, "
                   "expected about 0", hint="normal_(p, mean=0.0, std=...): centred on zero")


def test_initial_loss_is_about_ln_vocab():
    config = GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=128)
    model = make_model(config, dtype=torch.float32)
    idx, targets = random_ids(config, 8, 64, seed=1), random_ids(config, 8, 64, seed=2)
    with torch.no_grad():
        _, loss = model(idx, targets)
    expect_close(loss.item(), math.log(65), "initial loss on random targets (ln 65 = 4.174)",
                 rel=0.03, hint="small initial weights give near-uniform predictions; default "
                                "nn.Embedding init (std 1) makes the first loss far larger")


# --- the forward pass, against a from-scratch reference ---


def reference_logits(state, config, idx):
    """GPT-2 forward written with plain tensor ops, one head at a time, straight from the
    state dict: pre-norm blocks, exact (erf) GELU, LayerNorm eps 1e-5."""
    C, H = config.n_embd, config.n_head
    hd = C // H
    T = idx.shape[1]

    def linear(x, name):
        y = x @ state[name + ".weight"].T
        return y + state[name + ".bias"] if name + ".bias" in state else y

    def layer_norm(x, name):
        centred = x - x.mean(-1, keepdim=True)
        y = centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + 1e-5)
        y = y * state[name + ".weight"]
        return y + state[name + ".bias"] if name + ".bias" in state else y

    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    x = state["transformer.wte.weight"][idx] + state["transformer.wpe.weight"][:T]
    for i in range(config.n_layer):
        p = f"transformer.h.{i}."
        qkv = linear(layer_norm(x, p + "ln_1"), p + "attn.c_attn")
        q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
        heads = []
        for h in range(H):
            cols = slice(h * hd, (h + 1) * hd)
            scores = q[..., cols] @ k[..., cols].transpose(-1, -2) / math.sqrt(hd)
            weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
            heads.append(weights @ v[..., cols])
        x = x + linear(torch.cat(heads, dim=-1), p + "attn.c_proj")
        hidden = linear(layer_norm(x, p + "ln_2"), p + "mlp.c_fc")
        hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))
        x = x + linear(hidden, p + "mlp.c_proj")
    return layer_norm(x, "transformer.ln_f") @ state["lm_head.weight"].T


def randomise(model, seed):
    """Random values everywhere, so that gains, biases and every weight matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
def test_logits_and_loss_match_a_reference_forward(attention, bias):
    model = make_model(attention=attention, bias=bias)
    randomise(model, seed=3)
    idx, targets = random_ids(SMALL, 3, 10, seed=4), random_ids(SMALL, 3, 10, seed=5)
    logits, loss = model(idx, targets)
    want = reference_logits(model.state_dict(), SMALL, idx)
    expect(tuple(logits.shape) == (3, 10, SMALL.vocab_size),
           f"logits have shape {tuple(logits.shape)}, expected (3, 10, {SMALL.vocab_size})")
    expect_close(logits, want, f"logits ({attention} attention, bias={bias})", rel=1e-7, abs=1e-9,
                 hint="pre-norm blocks x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)); heads split "
                      "with view(B, T, n_head, head_dim).transpose(1, 2); scores / sqrt(head_dim); "
                      "exact GELU (nn.GELU()); ln_f before lm_head")
    want_loss = F.cross_entropy(want.reshape(-1, SMALL.vocab_size), targets.reshape(-1))
    expect_close(loss.item(), want_loss.item(), "loss", rel=1e-7,
                 hint="the mean cross-entropy over all B*T positions")
    expect(model(idx)[1] is None, "forward(idx) without targets must return (logits, None)")


def test_the_two_attention_paths_agree_in_values_and_gradients():
    sdpa = make_model(attention="sdpa")
    randomise(sdpa, seed=6)
    manual = make_model(attention="manual")
    manual.load_state_dict(sdpa.state_dict())
    idx, targets = random_ids(SMALL, 2, SMALL.block_size, 7), random_ids(SMALL, 2, 12, 8)
    results = {}
    for name, model in (("sdpa", sdpa), ("manual", manual)):
        logits, loss = model(idx, targets)
        loss.backward()
        results[name] = logits, {n: p.grad for n, p in model.named_parameters()}
    expect_close(results["manual"][0], results["sdpa"][0], "manual-path logits vs sdpa-path",
                 rel=1e-9, abs=1e-10,
                 hint="manual: softmax((q @ k^T) / sqrt(head_dim), masked to -inf above the "
                      "diagonal) @ v")
    for name, grad in results["sdpa"][1].items():
        expect_close(results["manual"][1][name], grad, f"grad of {name}, manual vs sdpa",
                     rel=1e-8, abs=1e-10)


class SdpaCalls(TorchFunctionMode):
    """Records every call of scaled_dot_product_attention, however the model reaches it
    (F.scaled_dot_product_attention, or the function imported by name): for each, whether
    it was given a causal mask (is_causal=True or an attn_mask)."""

    def __init__(self):
        super().__init__()
        self.calls: list[bool] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "scaled_dot_product_attention":
            is_causal = kwargs.get("is_causal", args[5] if len(args) > 5 else False)
            mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
            self.calls.append(bool(is_causal) or mask is not None)
        return func(*args, **kwargs)


def test_each_path_uses_its_own_attention():
    idx = random_ids(SMALL, 1, 6, seed=9)
    with SdpaCalls() as sdpa:
        make_model(attention="sdpa")(idx)
    expect(sdpa.calls == [True] * SMALL.n_layer,
           f"the sdpa path made {len(sdpa.calls)} scaled_dot_product_attention calls (causal "
           f"or not: {sdpa.calls}); expected one causal call per layer ({SMALL.n_layer})",
           hint="attention='sdpa' calls F.scaled_dot_product_attention(q, k, v, is_causal=True)")
    with SdpaCalls() as sdpa:
        make_model(attention="manual")(idx)
    expect(sdpa.calls == [], f"attention='manual' called scaled_dot_product_attention "
                             f"{len(sdpa.calls)} times",
           hint="the manual path computes the masked softmax itself")


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
@settings(max_examples=25)
@given(data=st.data())
def test_changing_a_token_never_changes_earlier_logits(attention, data):
    model = make_model(attention=attention)
    length = data.draw(st.integers(2, SMALL.block_size), label="length")
    tokens = data.draw(st.lists(st.integers(0, SMALL.vocab_size - 1), min_size=length,
                                max_size=length), label="tokens")
    j = data.draw(st.integers(0, length - 1), label="changed position")
    new = data.draw(st.integers(0, SMALL.vocab_size - 1).filter(lambda t: t != tokens[j]),
                    label="new token")
    changed = tokens[:j] + [new] + tokens[j + 1:]
    with torch.no_grad():
        before, _ = model(torch.tensor([tokens]))
        after, _ = model(torch.tensor([changed]))
    expect_close(after[0, :j], before[0, :j], f"logits at positions 0..{j - 1} after changing "
                 f"token {j}", rel=1e-9, abs=1e-10,
                 hint="position t may only attend to positions <= t: mask every key j > t with "
                      "-inf before the softmax (is_causal=True does it for sdpa)")
    expect(not torch.allclose(after[0, j], before[0, j]),
           f"changing token {j} left the logits at position {j} unchanged",
           hint="the mask is off by one: a position must see its own token")


def test_a_sequence_longer_than_block_size_is_a_clear_error():
    model = make_model()
    block = SMALL.block_size
    model(random_ids(SMALL, 1, block, seed=10))  # exactly block_size tokens is fine
    with pytest.raises(ValueError) as info:
        model(random_ids(SMALL, 1, block + 1, seed=10))
    message = str(info.value)
    expect(str(block) in message and str(block + 1) in message,
           f"the error for {block + 1} tokens with block_size {block} was: {message!r}",
           hint="say how many tokens came and what block_size is, and suggest cropping to "
                "idx[:, -block_size:]")


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_dropout_is_active_in_training_only(attention):
    model = make_model(attention=attention, dropout=0.5)
    without = make_model(attention=attention)
    without.load_state_dict(model.state_dict())
    idx = random_ids(SMALL, 2, 8, seed=11)
    model.train()
    expect(not torch.equal(model(idx)[0], model(idx)[0]),
           "two forwards in train() mode with dropout=0.5 gave the same logits",
           hint="use nn.Dropout(config.dropout) after the embeddings, on the attention weights "
                "(or dropout_p for sdpa) and after each residual projection")
    model.eval()
    expect_close(model(idx)[0], without(idx)[0], "logits in eval() mode vs a dropout=0 copy",
                 rel=1e-9, abs=1e-10,
                 hint="in eval() dropout must do nothing; for sdpa pass "
                      "dropout_p=self.dropout if self.training else 0.0")


def test_the_embeddings_are_dropped_too():
    # Every block in eval() mode, the model itself in train(): what dropout is left is the
    # one after wte + wpe, which the lesson asks for.
    model = make_model(dropout=0.5).train()
    for block in model.transformer.h:
        block.eval()
    idx = random_ids(SMALL, 2, 8, seed=12)
    expect(not torch.equal(model(idx)[0], model(idx)[0]),
           "with every block in eval() mode and the model in train() mode with dropout=0.5, "
           "two forwards gave the same logits: nothing drops the embeddings",
           hint="x = self.transformer.drop(wte(idx) + wpe(positions)): dropout after the "
                "embeddings, before the first block")


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_the_attention_weights_are_dropped_with_and_without_a_cache(attention):
    attn = make_model(attention=attention, dropout=0.5).transformer.h[0].attn
    attn.resid_dropout = torch.nn.Identity()  # what is left is dropout on the weights
    x = torch.randn(2, 6, SMALL.n_embd, dtype=torch.float64)
    outputs = {}
    for mode in ("train", "eval"):
        cache = KVCache(1)
        attn.eval()(x[:, :3], kv_cache=cache)  # three keys in the cache, nothing dropped
        getattr(attn, mode)()
        outputs[mode] = (attn(x), attn(x[:, 3:], kv_cache=cache))
    for i, what in enumerate(["without a cache", "with three cached keys"]):
        expect(not torch.equal(outputs["train"][i], outputs["eval"][i]),
               f"{attention} attention {what}, with resid_dropout switched off: dropout=0.5 "
               "in train() mode changed nothing", hint="drop attention weights while training: "
               "dropout_p=self.dropout in every sdpa call (is_causal and attn_mask), "
               "attn_dropout on the manual weights")


@pytest.mark.parametrize("part", ["Block", "CausalSelfAttention"])
def test_layer_defaults_to_0(part):
    module = getattr(gpt, part)(SMALL).to(torch.float64).eval()
    x = torch.randn(1, 4, SMALL.n_embd, dtype=torch.float64)
    try:
        got = module(x, KVCache(1))
    except (IndexError, ValueError) as err:
        pytest.fail(f"{part}(x, KVCache(1)) without layer raised {err!r}; layer defaults to 0",
                    pytrace=False)
    expect_close(got, module(x), f"{part} through a fresh one-layer cache vs without one",
                 rel=1e-9, abs=1e-12, hint="layer=0 by default, passed on to kv_cache.update")


def test_idx_must_be_a_batch_of_token_rows():
    model = make_model()
    for shape in ((5,), (2, 0)):
        with pytest.raises(ValueError) as info:
            model(torch.zeros(shape, dtype=torch.long))
        expect(str(shape) in str(info.value) or str(list(shape)) in str(info.value),
               f"idx of shape {shape} raised ValueError({str(info.value)!r}), which does not "
               "give the shape", hint="e.g. f'idx must be (batch, time) token ids, got shape "
                                      "{tuple(idx.shape)}'")


class EmbeddingDevices(TorchFunctionMode):
    """Records, for every embedding lookup, the devices of the ids and of the table: on the
    meta device a lookup with CPU ids does not fail, on a GPU it does."""

    def __init__(self):
        super().__init__()
        self.lookups: list[tuple[str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "embedding" and len(args) >= 2:
            self.lookups.append((args[0].device.type, args[1].device.type))
        return func(*args, **kwargs)


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_the_model_runs_on_the_device_of_its_weights(attention):
    with torch.device("meta"):  # the meta device stands in for a GPU (see on_meta)
        model = GPT(replace(SMALL, attention=attention))
    idx = torch.zeros(2, 3, dtype=torch.long, device="meta")
    cache = KVCache(SMALL.n_layer)
    for part, kv_cache in ((idx, None), (idx, cache), (idx[:, :1], cache)):
        with EmbeddingDevices() as spy:
            on_meta(f"a GPT ({attention}) on {part.shape[1]} tokens"
                    f"{' through a cache' if kv_cache else ''}",
                    partial(model, part, kv_cache=kv_cache),
                    hint="make positions and masks on the input's device: "
                         "torch.arange(..., device=idx.device), causal_mask(T, n_key, x.device)")
        mixed = [pair for pair in spy.lookups if pair[0] != pair[1]]
        expect(not mixed, f"embedding lookups with ids on one device and the table on "
               f"another (ids, table): {mixed}", hint="make the positions on the device "
               "of idx: torch.arange(start, start + T, device=idx.device)")


# --- the KV cache: feed the tokens a few at a time, get the same logits ---


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_kv_cache_gives_the_same_logits_as_one_full_forward(attention):
    model = make_model(attention=attention)
    randomise(model, seed=12)
    idx = random_ids(SMALL, 2, SMALL.block_size, seed=13)
    full, _ = model(idx)
    cache = KVCache(SMALL.n_layer)
    chunks = [(0, 5), (5, 8)] + [(t, t + 1) for t in range(8, SMALL.block_size)]
    pieces = []
    for start, end in chunks:
        expect(len(cache) == start, f"len(cache) is {len(cache)} before feeding positions "
               f"{start}..{end - 1}", hint="each attention layer appends its k and v with "
                                            "kv_cache.update(layer, k, v)")
        pieces.append(model(idx[:, start:end], kv_cache=cache)[0])
    expect_close(torch.cat(pieces, dim=1), full,
                 "logits fed through a KV cache (5 tokens, then 3, then one at a time) vs one "
                 "forward", rel=1e-8, abs=1e-10,
                 hint="with a cache, the new tokens sit at positions len(cache) onwards (wpe), "
                      "attend to the cached keys plus themselves, and need the shifted mask "
                      "causal_mask(T, n_key)")
    with pytest.raises(ValueError):
        model(idx[:, :1], kv_cache=cache)  # position block_size does not exist


def test_a_single_batch_overfits():
    config = GPTConfig(vocab_size=16, block_size=16, n_layer=2, n_head=2, n_embd=32)
    model = make_model(config, seed=0, dtype=torch.float32)
    idx, targets = random_ids(config, 4, 16, seed=14), random_ids(config, 4, 16, seed=15)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        _, loss = model(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Reference runs over six seeds end between 0.005 and 0.031 (from 2.77 = ln 16).
    expect(losses[-1] < 0.1, f"loss after 50 Adam steps (lr 1e-2) on one batch of 64 random "
                             f"targets is {losses[-1]:.3f} (started at {losses[0]:.3f}); "
                             "expected < 0.1",
           hint="a model this size can memorise 64 tokens; if the loss barely moves, check that "
                "forward returns a loss attached to the parameters (no .item(), no detach)")
