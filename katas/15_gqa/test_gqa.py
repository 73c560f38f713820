"""Specs for kata 15. Oracles, none of them this kata's code: a brute-force window mask (two
loops); a from-scratch float64 attention written here over your state dict, one query head at
a time (its RoPE is kata 13's apply_rope, which kata 13's specs pin);
`F.scaled_dot_product_attention(..., enable_gqa=True)`; kata 09's CausalSelfAttention loaded
with the key/value heads repeated (repeat_interleave); memory counted from every tensor your
cache holds, and the closed form 2 * n_layer * n_kv_head * head_dim * bytes per token."""

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from gpt import CausalSelfAttention, GPTConfig
from gqa import GroupedQueryAttention, StaticKVCache, sliding_window_mask
from hypothesis import given, settings
from hypothesis import strategies as st
from rope import apply_rope

from harness.checks import expect, expect_close, on_meta

C, H = 24, 4  # n_embd and n_head of the small attentions below: head_dim 6
HD = C // H


# --- oracles written here -------------------------------------------------------------


def brute_force_mask(n_query, n_key, window):
    """The rule of the lesson, one entry at a time: the query at position p (the queries are
    the last n_query of n_key positions) sees the keys max(0, p - window + 1) .. p."""
    rows = []
    for i in range(n_query):
        p = n_key - n_query + i
        first = 0 if window is None else max(0, p - window + 1)
        rows.append([first <= j <= p for j in range(n_key)])
    return torch.tensor(rows, dtype=torch.bool).reshape(n_query, n_key)


def param(state, name):
    """state[name], or a failure that says which names the state dict has."""
    expect(name in state, f"the state dict has no {name!r}; it has {sorted(state)}",
           hint="name the submodules c_attn and c_proj as kata 09 does (with qk_norm also "
                "q_norm and k_norm)")
    return state[name]


def rms_norm(x, gain):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * gain


def projections(state, x, n_kv_head, positions, rope, qk_norm, base=10000.0):
    """q (B, H, T, hd), k and v (B, n_kv_head, T, hd) from the fused c_attn, as the lesson lays
    it out: the first C output rows make q, the next n_kv_head * hd make k, the last v."""
    B, T, _ = x.shape
    qkv = x @ param(state, "c_attn.weight").T
    if "c_attn.bias" in state:
        qkv = qkv + state["c_attn.bias"]
    kv = n_kv_head * HD
    expect(qkv.shape[-1] == C + 2 * kv,
           f"c_attn has {qkv.shape[-1]} outputs; expected n_embd + 2 * n_kv_head * head_dim = "
           f"{C} + 2 * {n_kv_head} * {HD} = {C + 2 * kv}",
           hint="c_attn = nn.Linear(n_embd, n_embd + 2 * n_kv_head * head_dim): q, then k, then v")
    q = qkv[..., :C].view(B, T, H, HD).transpose(1, 2)
    k = qkv[..., C:C + kv].view(B, T, n_kv_head, HD).transpose(1, 2)
    v = qkv[..., C + kv:].view(B, T, n_kv_head, HD).transpose(1, 2)
    if qk_norm:
        q = rms_norm(q, param(state, "q_norm.weight"))
        k = rms_norm(k, param(state, "k_norm.weight"))
    if rope:
        q, k = apply_rope(q, positions, base), apply_rope(k, positions, base)
    return q, k, v


def output_projection(state, y):
    out = y @ param(state, "c_proj.weight").T
    return out + state["c_proj.bias"] if "c_proj.bias" in state else out


def reference(state, x, n_kv_head, positions, window=None, rope=True, qk_norm=False,
              base=10000.0):
    """Grouped-query attention, one query head at a time: query head h reads key/value head
    h // (n_head // n_kv_head), under the brute-force window mask."""
    T = x.shape[1]
    q, k, v = projections(state, x, n_kv_head, positions, rope, qk_norm, base)
    allowed = brute_force_mask(T, T, window)
    heads = []
    for h in range(H):
        j = h // (H // n_kv_head)
        scores = q[:, h] @ k[:, j].transpose(-1, -2) / math.sqrt(HD)
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        heads.append(weights @ v[:, j])
    return output_projection(state, torch.cat(heads, dim=-1))


# --- helpers --------------------------------------------------------------------------


def make_attention(seed=0, **settings):
    torch.manual_seed(seed)
    attention = GroupedQueryAttention(C, H, **settings).to(torch.float64)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # random values everywhere, so that every weight and gain matters
        for p in attention.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.4)
    return attention.eval()


def random_x(batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, C, generator=g, dtype=torch.float64)


def make_cache(n_kv_head, max_len, window=None, batch=2, n_layer=1):
    return StaticKVCache(n_layer, batch, n_kv_head, HD, max_len, window=window,
                         dtype=torch.float64)


def bytes_held(cache):
    """Bytes of every distinct tensor storage in the cache's attributes (or in lists, tuples
    and dicts there), whatever the attributes are called."""
    storages = {}

    def visit(obj):
        if isinstance(obj, torch.Tensor):
            storages[obj.untyped_storage().data_ptr()] = obj.untyped_storage().nbytes()
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item)

    visit(vars(cache))
    return sum(storages.values())


def expect_value_error(call, what, hint, shown=""):
    """`call()` must raise a ValueError whose message contains `shown`."""
    try:
        call()
    except ValueError as err:
        expect(shown in str(err), f"{what} raised ValueError({str(err)!r}), which does not say "
                                  f"{shown!r}", hint=hint)
        return
    raise AssertionError(f"{what} raised no ValueError\n  hint: {hint}")


SETTINGS = {  # (n_kv_head, window, rope, qk_norm, bias)
    "MHA": (4, None, True, False, False),
    "GQA": (2, None, True, False, False),
    "MQA": (1, None, True, False, False),
    "GQA no RoPE": (2, None, False, False, False),
    "GQA window 3": (2, 3, True, False, False),
    "MQA window 1": (1, 1, True, False, False),
    "GQA QK-norm bias": (2, None, True, True, True),
    "MHA window 5 QK-norm": (4, 5, True, True, False),
}


def attention_for(name, seed=0):
    n_kv_head, window, rope, qk_norm, bias = SETTINGS[name]
    return make_attention(seed, n_kv_head=n_kv_head, window=window, rope=rope,
                          qk_norm=qk_norm, bias=bias)


# --- the sliding-window mask ----------------------------------------------------------


def test_sliding_window_mask_examples():
    got = sliding_window_mask(5, 5, window=3)
    want = brute_force_mask(5, 5, 3)
    expect(got.dtype == torch.bool and got.tolist() == want.tolist(),
           f"sliding_window_mask(5, 5, window=3):\n  expected {want.int().tolist()}\n"
           f"  got      {got.int().tolist()}",
           hint="query p sees keys max(0, p - window + 1) .. p: itself and the window - 1 "
                "before it, so each row has at most `window` ones")
    got = sliding_window_mask(2, 6, window=2)
    want = [[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]]
    expect(got.int().tolist() == want,
           f"sliding_window_mask(2, 6, window=2) (two new queries after 4 cached keys):\n"
           f"  expected {want}\n  got      {got.int().tolist()}",
           hint="the queries are the LAST n_query positions: query i sits at n_key - n_query + i")
    causal = sliding_window_mask(4, 4)
    expect(causal.tolist() == torch.ones(4, 4, dtype=torch.bool).tril().tolist(),
           f"sliding_window_mask(4, 4) without a window:\n  expected the lower triangle\n"
           f"  got      {causal.int().tolist()}", hint="window=None is kata 09's causal_mask")


@settings(max_examples=60)
@given(n_key=st.integers(1, 12), data=st.data())
def test_sliding_window_mask_matches_a_brute_force_mask(n_key, data):
    n_query = data.draw(st.integers(1, n_key), label="n_query")
    window = data.draw(st.none() | st.integers(1, n_key + 2), label="window")
    got, want = sliding_window_mask(n_query, n_key, window), brute_force_mask(n_query, n_key,
                                                                            window)
    expect(tuple(got.shape) == (n_query, n_key) and got.tolist() == want.tolist(),
           f"sliding_window_mask({n_query}, {n_key}, window={window}):\n"
           f"  expected {want.int().tolist()}\n  got      {got.int().tolist()}",
           hint="True where p - window < j <= p, p = n_key - n_query + i; a window of 1 is the "
                "diagonal (each position sees only itself), one wider than the sequence is causal")


# --- the module: fused layout, names, settings ----------------------------------------


@pytest.mark.parametrize("n_kv_head", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
def test_fused_c_attn_and_state_dict_names(n_kv_head):
    attention = GroupedQueryAttention(C, H, n_kv_head=n_kv_head, qk_norm=True, bias=True)
    got = {name: tuple(t.shape) for name, t in attention.state_dict().items()}
    width = C + 2 * n_kv_head * HD
    want = {"c_attn.weight": (width, C), "c_attn.bias": (width,), "c_proj.weight": (C, C),
            "c_proj.bias": (C,), "q_norm.weight": (HD,), "k_norm.weight": (HD,)}
    expect(got == want,
           f"GroupedQueryAttention({C}, {H}, n_kv_head={n_kv_head}, qk_norm=True, bias=True)"
           f".state_dict():\n  expected {want}\n  got      {got}",
           hint="one fused c_attn = Linear(n_embd, n_embd + 2 * n_kv_head * head_dim) for q, k "
                "and v; c_proj = Linear(n_embd, n_embd); qk_norm adds RMSNorm(head_dim) modules "
                "q_norm and k_norm; keep masks and caches out of the state dict")
    plain = GroupedQueryAttention(C, H)
    got = {name: tuple(t.shape) for name, t in plain.state_dict().items()}
    want = {"c_attn.weight": (3 * C, C), "c_proj.weight": (C, C)}
    expect(got == want, f"GroupedQueryAttention({C}, {H}).state_dict():\n  expected {want}\n"
                        f"  got      {got}",
           hint="n_kv_head=None means n_kv_head = n_head (multi-head attention); bias=False "
                "and qk_norm=False by default")


def test_bad_settings_are_clear_value_errors():
    cases = [(dict(n_kv_head=3), "3", "n_kv_head must divide n_head"),
             (dict(n_kv_head=0), "0", "n_kv_head must be at least 1"),
             (dict(window=0), "0", "a window of 0 sees nothing: window is None or >= 1"),
             (dict(window=2.5), "2.5", "a window counts positions: None or an int >= 1")]
    for kwargs, shown, why in cases:
        expect_value_error(lambda kwargs=kwargs: GroupedQueryAttention(C, H, **kwargs),
                           f"GroupedQueryAttention({C}, {H}, **{kwargs})",
                           hint=f"{why}; say which value is wrong", shown=shown)
    expect_value_error(lambda: GroupedQueryAttention(25, 4), "GroupedQueryAttention(25, 4)",
                       hint="n_embd must be divisible by n_head: say so, with n_embd", shown="25")
    # head_dim 5 with RoPE: a ValueError when it is made, or at the latest in its first forward
    expect_value_error(lambda: GroupedQueryAttention(20, 4)(torch.zeros(1, 2, 20)),
                       "GroupedQueryAttention(20, 4) (head_dim 5, rope=True) and a forward",
                       hint="RoPE turns pairs of numbers, so head_dim must be even; say "
                            "head_dim=5", shown="5")
    for window in (0, 2.5):
        expect_value_error(lambda window=window: sliding_window_mask(3, 3, window=window),
                           f"sliding_window_mask(3, 3, window={window})",
                           hint="window is None or an int >= 1", shown=str(window))
        expect_value_error(lambda window=window: StaticKVCache(1, 1, 1, HD, 8, window=window),
                           f"StaticKVCache(1, 1, 1, 6, 8, window={window})",
                           hint="window is None or an int >= 1", shown=str(window))


def test_cache_sizes_must_be_positive_ints():
    names = ["n_layer", "batch_size", "n_kv_head", "head_dim", "max_len"]
    for i, name in enumerate(names):
        for bad in (0, 2.5):
            sizes = [1, 1, 1, HD, 8]
            sizes[i] = bad
            expect_value_error(lambda sizes=sizes: StaticKVCache(*sizes),
                               f"StaticKVCache({name}={bad})",
                               hint=f"every size must be a positive int: say {name} is wrong "
                                    f"and give the value", shown=str(bad))


# --- the forward pass against the oracles ---------------------------------------------


@pytest.mark.parametrize("name", list(SETTINGS))
def test_matches_a_float64_reference_one_head_at_a_time(name):
    attention = attention_for(name)
    n_kv_head, window, rope, qk_norm, _ = SETTINGS[name]
    x = random_x(2, 9, seed=1)
    positions = torch.arange(9) + 37  # the tokens sit at positions 37..45
    got = attention(x, positions=positions)
    want = reference(attention.state_dict(), x, n_kv_head, positions, window, rope, qk_norm)
    expect(tuple(got.shape) == (2, 9, C), f"output shape {tuple(got.shape)}, expected (2, 9, {C})")
    expect_close(got, want, f"output of {name} for tokens at positions 37..45",
                 rel=1e-7, abs=1e-9,
                 hint="q, k, v = c_attn(x).split([n_embd, kv, kv]); query head h reads key/value "
                      "head h // (n_head // n_kv_head) (repeat_interleave, not repeat); q_norm "
                      "and k_norm before RoPE; rotate q and k (never v) at `positions`; scores "
                      "/ sqrt(head_dim); the window mask; c_proj")
    default = attention(x)
    want = reference(attention.state_dict(), x, n_kv_head, torch.arange(9), window, rope, qk_norm)
    expect_close(default, want, f"output of {name} without positions (so 0..8)", rel=1e-7,
                 abs=1e-9, hint="without a cache and without positions, the tokens sit at 0..T-1")


def test_rope_base_is_used():
    attention = make_attention(3, n_kv_head=2, rope_base=500.0)
    x, positions = random_x(2, 7, seed=4), torch.arange(7) + 20
    want = reference(attention.state_dict(), x, 2, positions, base=500.0)
    expect_close(attention(x, positions=positions), want,
                 "GroupedQueryAttention(rope_base=500.0) against the reference at base 500",
                 rel=1e-7, abs=1e-9, hint="pass self.rope_base to apply_rope for q and for k")


@pytest.mark.parametrize("name", ["MHA", "GQA", "MQA", "GQA window 3", "MQA window 1"])
def test_matches_sdpa_with_enable_gqa(name):
    attention = attention_for(name, seed=2)
    n_kv_head, window, rope, qk_norm, _ = SETTINGS[name]
    x, positions = random_x(2, 8, seed=3), torch.arange(8)
    state = attention.state_dict()
    q, k, v = projections(state, x, n_kv_head, positions, rope, qk_norm)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=brute_force_mask(8, 8, window),
                                       enable_gqa=True)
    want = output_projection(state, y.transpose(1, 2).reshape(2, 8, C))
    expect_close(attention(x), want, f"output of {name} vs F.scaled_dot_product_attention("
                 "..., enable_gqa=True)", rel=1e-7, abs=1e-9,
                 hint="enable_gqa lets query head h use key/value head h // (n_head // "
                      "n_kv_head); repeat_interleave(group, dim=1) on k and v does the same")


@pytest.mark.parametrize("n_kv_head", [2, 1], ids=["GQA", "MQA"])
def test_equals_multi_head_attention_with_each_kv_head_repeated(n_kv_head):
    """Kata 09's attention, given the key and value weights of each kv head repeated for the
    query heads it serves (repeat_interleave on the head axis), computes the same thing."""
    gqa = make_attention(4, n_kv_head=n_kv_head, rope=False, bias=True)
    state = gqa.state_dict()
    group = H // n_kv_head

    def expand(rows):  # (n_kv_head * hd, ...) -> (n_head * hd, ...): head j, group times
        return rows.reshape(n_kv_head, HD, *rows.shape[1:]).repeat_interleave(group, dim=0) \
            .reshape(H * HD, *rows.shape[1:])

    kv = n_kv_head * HD
    mha = CausalSelfAttention(GPTConfig(n_embd=C, n_head=H, bias=True)).to(torch.float64)
    w, b = param(state, "c_attn.weight"), param(state, "c_attn.bias")
    mha.load_state_dict({
        "c_attn.weight": torch.cat([w[:C], expand(w[C:C + kv]), expand(w[C + kv:])]),
        "c_attn.bias": torch.cat([b[:C], expand(b[C:C + kv]), expand(b[C + kv:])]),
        "c_proj.weight": param(state, "c_proj.weight"), "c_proj.bias": param(state, "c_proj.bias")})
    x = random_x(2, 7, seed=5)
    expect_close(gqa(x), mha.eval()(x), f"GQA ({H} query heads, {n_kv_head} kv heads) vs kata "
                 "09's multi-head attention with each kv head repeated", rel=1e-7, abs=1e-9,
                 hint="key/value head j serves query heads j*group .. (j+1)*group - 1: "
                      "k.repeat_interleave(group, dim=1) gives [k0, k0, k1, k1]; k.repeat(1, "
                      "group, 1, 1) gives [k0, k1, k0, k1], the wrong heads")


@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
def test_with_every_switch_off_it_is_kata_09s_attention(bias):
    torch.manual_seed(6)
    old = CausalSelfAttention(GPTConfig(n_embd=C, n_head=H, bias=bias)).to(torch.float64).eval()
    new = GroupedQueryAttention(C, H, n_kv_head=H, window=None, rope=False, bias=bias)
    old_names, new_names = sorted(old.state_dict()), sorted(new.state_dict())
    expect(old_names == new_names, f"state-dict names:\n  kata 09  {old_names}\n"
                                   f"  kata 15  {new_names}",
           hint="the same c_attn and c_proj as kata 09, so kata 09's weights load unchanged")
    new.load_state_dict(old.state_dict())
    new = new.to(torch.float64).eval()
    x = random_x(3, 10, seed=7)
    expect_close(new(x), old(x), "kata 15 with n_kv_head = n_head, rope=False, window=None vs "
                 "kata 09's CausalSelfAttention on kata 09's weights", rel=1e-9, abs=1e-12,
                 hint="with every switch off nothing may change: the same split of c_attn, the "
                      "same causal mask, the same scale")


@settings(max_examples=25)
@given(data=st.data())
def test_a_token_outside_the_window_changes_nothing(data):
    window = data.draw(st.integers(1, 4), label="window")
    length = data.draw(st.integers(2, 10), label="length")
    j = data.draw(st.integers(0, length - 1), label="changed position")
    attention = make_attention(8, n_kv_head=2, window=window)
    x = random_x(1, length, seed=9)
    changed = x.clone()
    changed[0, j] += 1.0
    with torch.no_grad():
        moved = (attention(changed) - attention(x)).abs().amax(-1)[0] > 1e-9
    want = [j <= p < j + window for p in range(length)]
    expect(moved.tolist() == want,
           f"window={window}: changing the token at position {j} moved the outputs at "
           f"{[p for p in range(length) if moved[p]]}; expected exactly positions "
           f"{[p for p in range(length) if want[p]]}",
           hint="position p sees p - window + 1 .. p, so token j reaches positions j .. "
                "j + window - 1 and nothing before j (the window counts the position itself)")


@pytest.mark.parametrize("window", [3, None], ids=["window 3", "no window"])
def test_dropout_is_active_in_training_only(window):
    attention = make_attention(10, n_kv_head=2, window=window)
    x = random_x(2, 6, seed=11)
    expect_close(attention.train()(x), attention.eval()(x), "output in train() mode with the "
                 "default dropout vs eval() mode", rel=1e-9, abs=1e-12,
                 hint="the default is dropout=0.0: nothing is dropped unless asked")
    dropping = GroupedQueryAttention(C, H, n_kv_head=2, window=window, dropout=0.5)
    dropping = dropping.to(torch.float64)
    dropping.load_state_dict(attention.state_dict())
    dropping.train()
    expect(not torch.equal(dropping(x), dropping(x)),
           "two forwards in train() mode with dropout=0.5 gave the same output",
           hint="dropout_p=self.dropout if self.training else 0.0 in sdpa, and resid_dropout "
                "after c_proj")
    dropping.resid_dropout = torch.nn.Identity()  # what is left is the attention's own dropout
    expect(not torch.equal(dropping(x), dropping(x)),
           f"window={window}: with resid_dropout switched off, two forwards in train() mode "
           "with dropout=0.5 gave the same output: the attention weights were not dropped",
           hint="pass dropout_p=self.dropout (while training) to every "
                "F.scaled_dot_product_attention call, with a mask and without")
    dropping.eval()
    expect_close(dropping(x), attention(x), "output in eval() mode vs a dropout=0 copy",
                 rel=1e-9, abs=1e-12, hint="in eval() dropout must do nothing: pass dropout_p=0.0")


# --- the static cache -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("window", [None, 16], ids=["max_len", "window"])
def test_cache_is_preallocated_at_the_formula(dtype, window):
    n_layer, batch, n_kv_head, head_dim, max_len = 3, 2, 2, 8, 64
    cache = StaticKVCache(n_layer, batch, n_kv_head, head_dim, max_len, window=window,
                          dtype=dtype)
    slots = max_len if window is None else window
    size = torch.tensor([], dtype=dtype).element_size()
    want = 2 * n_layer * batch * n_kv_head * slots * head_dim * size
    expect_close(cache.nbytes(), want,
                 f"nbytes() of a new StaticKVCache(n_layer={n_layer}, batch={batch}, n_kv_head="
                 f"{n_kv_head}, head_dim={head_dim}, max_len={max_len}, window={window}, {dtype})",
                 rel=0, hint="keys and values: 2 * n_layer * batch * n_kv_head * slots * "
                             "head_dim * bytes, slots = max_len, or window for a rolling buffer; "
                             "allocate it all in __init__")
    held = bytes_held(cache)
    expect(held == want, f"the cache's attributes hold {held} bytes of tensors; the formula gives "
                         f"{want}", hint="nbytes() must count what the cache really holds")
    expect(len(cache) == 0, f"len() of a new cache is {len(cache)}, expected 0")


def test_everything_follows_the_device_it_is_given():
    held = StaticKVCache(1, 2, 2, 8, 16, window=3, device="meta")
    devices = {t.device.type for t in vars(held).values() if isinstance(t, torch.Tensor)}
    expect(devices == {"meta"}, f"StaticKVCache(..., device='meta') holds tensors on {devices}",
           hint="allocate keys and values with device=device")
    x = torch.zeros(2, 5, 32, device="meta")  # the meta device stands in for a GPU
    hint = ("make every new tensor (arange, zeros, masks) on the device of the tensors you "
            "were given: device=x.device, k.device or the cache's device; otherwise it fails "
            "on a GPU")
    for window in (None, 3):
        on_meta(f"sliding_window_mask(3, 4, {window})",
                partial(sliding_window_mask, 3, 4, window, device="meta"), hint)
        attention = GroupedQueryAttention(32, 4, n_kv_head=2, window=window).to("meta")
        on_meta(f"window={window}: a forward without a cache", partial(attention, x), hint)
        cache = StaticKVCache(1, 2, 2, 8, 16, window=window, device="meta")
        for T in (5, 1, 2):
            on_meta(f"window={window}: a forward of {T} tokens through a cache",
                    partial(attention, x[:, :T], kv_cache=cache), hint)


def test_bytes_per_token_shrink_by_n_head_over_n_kv_head():
    per_token = {}
    for n_kv_head in (6, 3, 2, 1):
        cache = StaticKVCache(6, 1, n_kv_head, 64, max_len=256)
        per_token[n_kv_head] = cache.nbytes() / 256
    want = {n: 2 * 6 * n * 64 * 4 for n in (6, 3, 2, 1)}
    expect(per_token == want,
           f"bytes per token of a float32 cache for 6 layers, head_dim 64, by n_kv_head:\n"
           f"  expected {want}\n  got      {per_token}",
           hint="2 (keys and values) * n_layer * n_kv_head * head_dim * 4 bytes: MHA with 6 "
                "heads holds 6 times what MQA holds")


def test_update_takes_keys_and_values_that_require_grad():
    # In training the attention's k and v come from c_attn's weights: they carry autograd
    # history, and update must write them as it writes plain tensors (a twin cache fed the
    # same numbers without grad is the reference, so only autograd is tested here).
    for window, chunks in [(None, [3, 1]), (3, [2, 1, 5])]:
        cache, twin = (StaticKVCache(1, 1, 1, 2, max_len=4, window=window, dtype=torch.float64)
                       for _ in range(2))
        for T in chunks:
            k = torch.randn(1, 1, T, 2, dtype=torch.float64)
            want = twin.update(0, k, -k)
            try:
                got = cache.update(0, k.clone().requires_grad_(), (-k).requires_grad_())
            except RuntimeError as err:
                raise AssertionError(
                    f"update(0, k, v) with k and v that require grad (window={window}, chunks "
                    f"{chunks}) raised RuntimeError: {err}\n  hint: write k and v into buffers "
                    "made with torch.zeros (no requires_grad) by indexing, keys[..., a:b, :] = k, "
                    "or with index_copy_; never with out= or into a tensor that requires grad"
                ) from None
            same = all(torch.equal(g.detach(), w) for g, w in zip(got, want))
            expect(same, f"window={window}, chunks {chunks}: update returned other keys, values "
                   "or mask for k and v that require grad than for the same numbers without",
                   hint="write k and v the same way whether or not they require grad")


@pytest.mark.parametrize("window", [None, 2], ids=["max_len", "rolling"])
def test_len_counts_the_positions_every_layer_has_written(window):
    # A forward writes layer 0, then layer 1: in between, layer 1 has not written this step's
    # positions, so len must still say where the forward started.
    cache = StaticKVCache(2, 1, 1, 2, max_len=8, window=window, dtype=torch.float64)
    written = 0
    for T in (3, 1, 2):
        k = torch.zeros(1, 1, T, 2, dtype=torch.float64)
        cache.update(0, k, k)
        expect(len(cache) == written, f"len(cache) is {len(cache)} after layer 0 wrote positions "
               f"{written}..{written + T - 1} and before layer 1 did; expected {written} "
               f"(window={window})",
               hint="len counts the positions EVERY layer has written: min over the layers, "
                    "not the first layer's count, nor the last one written")
        cache.update(1, k, k)
        written += T
        expect(len(cache) == written, f"len(cache) is {len(cache)} after both layers wrote "
               f"{written} positions (window={window})", hint="min over the layers' counts")


def test_update_of_keys_shaped_unlike_the_cache_is_a_clear_error():
    # The cache is made for batch 2 and 2 key/value heads of HD dimensions.
    good = torch.zeros(2, 2, 1, HD, dtype=torch.float64)
    bad = {"batch 1": (1, 2, 1, HD), "4 key/value heads": (2, 4, 1, HD),
           f"head_dim {HD + 2}": (2, 2, 1, HD + 2), "no head axis": (2, 1, HD)}
    for window in (None, 3):
        for what, shape in bad.items():
            for name, k, v in [("k", torch.zeros(shape), torch.zeros(shape)),
                               ("v", good, torch.zeros(shape))]:
                call = f"update with {name} shaped {shape} ({what}; window={window})"
                try:
                    make_cache(2, max_len=8, window=window).update(0, k, v)
                except ValueError as err:
                    expect(str(shape) in str(err) or str(list(shape)) in str(err),
                           f"{call} raised ValueError({str(err)!r}), which does not give the "
                           f"shape {shape}", hint="say what came and what the cache holds: "
                                                  "(batch_size, n_kv_head, T, head_dim)")
                    continue
                except Exception as err:
                    raise AssertionError(
                        f"{call} raised {type(err).__name__}: {err}\n  hint: check k's and v's "
                        "shapes against the cache's (batch_size, n_kv_head, T, head_dim) "
                        "before writing, and raise a ValueError that gives them") from None
                raise AssertionError(f"{call} raised no error\n  hint: a ValueError that "
                                     "gives the shape")


def test_update_returns_exactly_the_keys_each_query_may_see():
    """Key vectors that carry their own position make the check independent of the order in
    which a cache lays out its slots."""
    for window, chunks in [(None, [3, 1, 1, 2]), (3, [1] * 8), (3, [2, 1, 4, 1, 5]),
                           (4, [6, 1])]:
        cache = StaticKVCache(1, 1, 1, 2, max_len=7, window=window, dtype=torch.float64)
        start = 0
        for T in chunks:
            positions = torch.arange(start, start + T, dtype=torch.float64)
            k = positions.view(1, 1, T, 1).expand(1, 1, T, 2).contiguous()
            keys, values, mask = cache.update(0, k, -k)
            expect(tuple(mask.shape) == (T, keys.shape[2]) and mask.dtype == torch.bool,
                   f"update returned a mask of shape {tuple(mask.shape)} ({mask.dtype}) for "
                   f"{T} queries and {keys.shape[2]} keys",
                   hint="the mask is (T new queries, n_keys returned) bools")
            for i in range(T):
                p = start + i
                seen = sorted(keys[0, 0, mask[i], 0].tolist())
                first = 0 if window is None else max(0, p - window + 1)
                want = [float(j) for j in range(first, p + 1)]
                expect(seen == want,
                       f"window={window}, after feeding chunks {chunks}: the query at position "
                       f"{p} may see the keys of positions {seen}; expected {want}",
                       hint="a rolling buffer keeps position t in slot t % window: read the "
                            "slots with a mask built from the position each slot holds (and "
                            "mask out slots not written yet); a chunk longer than what the "
                            "buffer can keep must be attended to before it overwrites")
                got_v = sorted((-values[0, 0, mask[i], 0]).tolist())
                expect(got_v == want, f"values seen by the query at position {p}: {got_v}, "
                                      f"expected {want}",
                       hint="write v where you write k")
            start += T
            expect(len(cache) == start, f"len(cache) is {len(cache)} after {start} positions",
                   hint="len counts every position written, even beyond the buffer's slots")


@pytest.mark.parametrize("window", [None, 3], ids=["max_len", "rolling"])
def test_cache_stores_keys_of_another_dtype_in_its_own(window):
    cache = StaticKVCache(1, 1, 1, 2, 8, window=window, dtype=torch.float32)
    twin = StaticKVCache(1, 1, 1, 2, 8, window=window, dtype=torch.float64)
    for start, T in ((0, 2), (2, 1), (3, 1)):
        k = torch.arange(start, start + T, dtype=torch.float64).view(1, 1, T, 1).expand(
            1, 1, T, 2) + 0.25
        try:
            keys, values, mask = cache.update(0, k, -k)
        except RuntimeError as err:
            expect(False, f"update on a float32 cache (window={window}) with float64 k and v "
                   f"raised RuntimeError: {err}",
                   hint="convert what you write to the cache's dtype: k.to(self.keys.dtype) "
                        "(under autocast, k may come in another dtype than the cache)")
        twin_keys, _, twin_mask = twin.update(0, k, -k)
        seen = sorted(keys[0, 0, mask[-1], 0].tolist())
        first = 0 if window is None else max(0, start + T - window)
        want = [p + 0.25 for p in range(first, start + T)]
        twin_right = sorted(twin_keys[0, 0, twin_mask[-1], 0].tolist()) == want
        expect(seen == want, f"window={window}: after float64 keys for positions 0..{start + T - 1}"
               f", the last query sees {seen}, expected {want}",
               hint="store each key, converted to the cache's dtype, in its own slot"
               if twin_right else "a float64 cache gets this wrong too, so it is not the dtype: "
               "the mask or the slots are wrong (test_update_returns_exactly_the_keys_each_"
               "query_may_see shows which keys each query sees)")


@pytest.mark.parametrize("name", ["MHA", "GQA", "MQA", "GQA QK-norm bias"])
def test_cache_gives_the_same_outputs_as_one_full_forward(name):
    attention = attention_for(name, seed=12)
    n_kv_head = SETTINGS[name][0]
    x = random_x(2, 12, seed=13)
    full = attention(x)
    cache = make_cache(n_kv_head, max_len=12)
    pieces = []
    for start, end in [(0, 5), (5, 8)] + [(t, t + 1) for t in range(8, 12)]:
        expect(len(cache) == start, f"len(cache) is {len(cache)} before feeding positions "
               f"{start}..{end - 1}", hint="update advances the layer's position by T")
        pieces.append(attention(x[:, start:end], kv_cache=cache))
    expect_close(torch.cat(pieces, dim=1), full,
                 f"{name}: outputs fed through a StaticKVCache (5 tokens, 3, then one at a time) "
                 "vs one forward", rel=1e-8, abs=1e-10,
                 hint="read start = len(cache) BEFORE update; rotate the new q and k at start .. "
                      "start + T - 1; attend over what update returns, with its mask")
    expect_value_error(lambda: attention(x[:, :1], kv_cache=cache),
                       "a 13th position in a cache of max_len 12",
                       hint="a full cache without a window is a ValueError that names max_len "
                            "(and says to make a bigger cache or use a window)", shown="12")


@pytest.mark.parametrize("window", [None, 4], ids=["max_len", "rolling"])
def test_cache_is_written_in_place_and_never_grows(window):
    attention = make_attention(14, n_kv_head=2, window=window)
    cache = make_cache(2, max_len=40, window=window)
    before = bytes_held(cache)
    storages, sizes = set(), set()
    real_update, keys_seen = cache.update, []

    def spy(layer, k, v):  # what update hands the attention
        keys, values, mask = real_update(layer, k, v)
        keys_seen.append(keys)
        return keys, values, mask

    x = random_x(2, 40, seed=15)
    attention(x[:, :3], kv_cache=cache)
    cache.update = spy
    for t in range(3, 40):
        attention(x[:, t:t + 1], kv_cache=cache)
        expect(len(keys_seen) == t - 2, f"forward with a kv_cache called kv_cache.update "
               f"{len(keys_seen)} times in {t - 2} one-token steps",
               hint="with a cache, k, v, mask = kv_cache.update(layer, k, v)")
        storages.add(keys_seen[-1].untyped_storage().data_ptr())
        sizes.add(cache.nbytes())
        expect(bytes_held(cache) == before,
               f"after {t + 1} positions the cache holds {bytes_held(cache)} bytes of tensors, "
               f"at the start {before}",
               hint="preallocate in __init__ and write in place (keys[..., t, :] = k, or "
                    "index_copy_); torch.cat makes a new, bigger tensor every step")
    del cache.update
    expect(len(storages) == 1 and sizes == {cache.nbytes()},
           f"over 37 one-token steps update returned keys from {len(storages)} different "
           f"storages, and nbytes() took the values {sorted(sizes)}",
           hint="return views of the preallocated buffers (keys[:, :, :n], or the whole rolling "
                "buffer), not new tensors")
    expect(len(cache) == 40, f"len(cache) is {len(cache)} after 40 positions")


@settings(max_examples=25)
@given(data=st.data())
def test_rolling_cache_matches_windowed_attention_recomputed_from_scratch(data):
    window = data.draw(st.integers(1, 5), label="window")
    chunks = data.draw(st.lists(st.integers(1, 2 * window + 1), min_size=1, max_size=8),
                       label="chunks")
    first = data.draw(st.sampled_from([0, 1, 1_000, 100_000]), label="first position")
    n_kv_head = data.draw(st.sampled_from([4, 2, 1]), label="n_kv_head")
    attention = make_attention(16, n_kv_head=n_kv_head, window=window)
    length = sum(chunks)
    x = random_x(2, length, seed=17)
    positions = torch.arange(first, first + length)
    want = reference(attention.state_dict(), x, n_kv_head, positions, window)
    cache = make_cache(n_kv_head, max_len=window, window=window)
    pieces, start = [], 0
    for T in chunks:
        pieces.append(attention(x[:, start:start + T], positions=positions[start:start + T],
                                kv_cache=cache))
        start += T
    expect_close(torch.cat(pieces, dim=1), want,
                 f"window {window}, chunks {chunks} from position {first}: outputs through the "
                 "rolling cache vs windowed attention recomputed over the whole sequence",
                 rel=1e-7, abs=1e-9,
                 hint="position t lives in slot t % window; the mask must follow the position "
                      "each slot holds, not the slot's index; RoPE uses the absolute positions "
                      "(keys are stored already rotated); a chunk longer than the free slots "
                      "must see the old keys it overwrites")


def test_rolling_cache_with_default_positions_counts_past_the_window():
    # No positions given: the tokens sit at len(cache) onwards, and past the window that is
    # still the absolute position, not a slot.
    attention = make_attention(21, n_kv_head=2, window=3)
    x = random_x(2, 11, seed=22)
    want = reference(attention.state_dict(), x, 2, torch.arange(11), window=3)
    cache = make_cache(2, max_len=3, window=3)
    pieces = [attention(x[:, :2], kv_cache=cache)]
    pieces += [attention(x[:, t:t + 1], kv_cache=cache) for t in range(2, 8)]
    pieces.append(attention(x[:, 8:], kv_cache=cache))  # a chunk after the buffer is full
    expect_close(torch.cat(pieces, dim=1), want,
                 "window 3, no positions given: 2 tokens, 6 one at a time, then 3, through a "
                 "rolling cache vs windowed attention over positions 0..10", rel=1e-7, abs=1e-9,
                 hint="the default positions are len(cache) .. len(cache) + T - 1, read before "
                      "update: absolute positions that go on past the window (not len % window, "
                      "not the number of filled slots)")


def test_layers_share_one_cache_by_index():
    layers = [make_attention(18 + i, n_kv_head=2, window=3) for i in range(2)]

    def stack(x, cache=None):
        start = 0 if cache is None else len(cache)  # read once, before the layers write
        positions = torch.arange(start, start + x.shape[1])
        for i, layer in enumerate(layers):
            x = x + layer(x, positions=positions, kv_cache=cache, layer=i)
        return x

    x = random_x(1, 9, seed=20)
    full = stack(x)
    cache = make_cache(2, max_len=9, window=3, batch=1, n_layer=2)
    pieces = [stack(x[:, :4], cache)] + [stack(x[:, t:t + 1], cache) for t in range(4, 9)]
    expect_close(torch.cat(pieces, dim=1), full, "two layers through one 2-layer cache vs the "
                 "full forward", rel=1e-8, abs=1e-10,
                 hint="update(layer, ...) writes that layer's own slots: every layer keeps its "
                      "own keys and values")
    expect(len(cache) == 9, f"len(cache) is {len(cache)} after 9 positions through 2 layers",
           hint="len counts positions, not layers times positions")
    expect_value_error(lambda: layers[0](x[:, :1], kv_cache=make_cache(2, 4, window=None, batch=1)),
                       "an attention with window 3 given a cache without a window",
                       hint="a cache made for another window would give the wrong mask: raise a "
                            "ValueError that says to make the cache with the attention's window "
                            "(3)", shown="3")


@pytest.mark.parametrize("windows", [(3, 5), (3, None), (None, 4)],
                         ids=["window 3, cache 5", "window 3, no cache window",
                              "no window, cache 4"])
def test_a_cache_made_for_another_window_is_a_clear_error(windows):
    window, cache_window = windows
    attention = make_attention(23, n_kv_head=2, window=window)
    expect_value_error(lambda: attention(random_x(2, 1, seed=24),
                                         kv_cache=make_cache(2, 8, window=cache_window)),
                       f"an attention with window {window} given a cache with window "
                       f"{cache_window}",
                       hint="compare kv_cache.window with the attention's own window (None "
                            "included) and raise a ValueError that names the attention's",
                       shown=str(window))
