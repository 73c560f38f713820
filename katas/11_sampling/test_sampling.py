"""Specs for kata 11. Oracles: the filtered distribution worked out in numpy float64 by
`oracle_probs` below (plain sorting and summing, no torch), sets worked by hand, chi-square
critical values from standard tables, and the cropping generate path for the cached one."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gpt import GPT, GPTConfig
from hypothesis import assume, given
from hypothesis import strategies as st
from sampling import check_sampling_args, generate, next_token_probs, sample_next

from harness.checks import expect, expect_close


def oracle_probs(row, temperature=1.0, top_k=None, top_p=None):
    """The distribution the lesson defines, for one row of logits, in float64."""
    z = np.asarray(row, dtype=np.float64) / temperature
    order = sorted(range(len(z)), key=lambda i: (-z[i], i))  # most likely first; ties: lower id
    kept = order[:top_k] if top_k is not None else order
    p = np.exp(z[kept] - z[kept].max())
    p /= p.sum()
    if top_p is not None:
        # kept is already sorted by probability: keep the shortest prefix reaching top_p.
        n = next(i + 1 for i, mass in enumerate(np.cumsum(p)) if mass >= top_p or i == len(p) - 1)
        kept, p = kept[:n], p[:n] / p[:n].sum()
    probs = np.zeros(len(z))
    probs[kept] = p
    return probs


def nucleus_is_clear_cut(row, temperature, top_k, top_p, margin=1e-6):
    """False when some cumulative mass lies within `margin` of top_p: float rounding may then
    decide whether the next token is in, and both answers are right."""
    if top_p is None:
        return True
    probs = np.sort(oracle_probs(row, temperature, top_k))[::-1]
    return all(abs(mass - top_p) > margin for mass in np.cumsum(probs)[:-1])


# --- the distribution ---

EXAMPLE = [2.0, 1.0, 0.5, 0.5, -1.0]  # the lesson's worked example

SETTINGS = [
    # temperature, top_k, top_p
    (1.0, None, None),
    (0.5, None, None),
    (2.0, None, None),
    (1.0, 3, None),
    (1.0, 2, None),
    (1.0, None, 0.8),
    (0.7, 4, 0.9),
    (1.0, 50, None),  # top_k above the vocabulary size keeps everything
    (1.0, None, 1.0),
]


@pytest.mark.parametrize("temperature,top_k,top_p", SETTINGS)
def test_next_token_probs_matches_the_oracle(temperature, top_k, top_p):
    g = torch.Generator().manual_seed(0)
    rows = torch.cat([torch.tensor([EXAMPLE]), torch.randn(2, 5, generator=g) * 2])
    got = next_token_probs(rows, temperature=temperature, top_k=top_k, top_p=top_p)
    want = [oracle_probs(r, temperature, top_k, top_p) for r in rows.tolist()]
    expect(tuple(got.shape) == (3, 5), f"next_token_probs returned shape {tuple(got.shape)} "
                                       "for (3, 5) logits; expected (3, 5)")
    expect_close(got, want, f"next_token_probs(temperature={temperature}, top_k={top_k}, "
                 f"top_p={top_p}) for rows {rows.tolist()[0]}, ...", rel=1e-5, abs=1e-6,
                 hint="divide by the temperature, keep the top_k logits, softmax, keep the "
                      "smallest most-likely set with mass >= top_p, renormalise")


def test_top_k_keeps_exactly_k_when_logits_tie():
    # ids 1, 2, 3 tie for the lead. top_k=2 keeps two of them: the lower ids, 1 and 2.
    got = next_token_probs(torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0]]), top_k=2)
    expect_close(got, [[0, 0.5, 0.5, 0, 0]], "next_token_probs([1, 3, 3, 3, 0], top_k=2)",
                 hint="cutting at 'logit >= the k-th largest' keeps all three tied tokens; sort "
                      "with stable=True and keep the first k ids of that order")


@pytest.mark.parametrize("top_p,kept", [
    (0.3, [2]), (0.6, [2, 0]), (0.7, [2, 0]), (0.8, [2, 0, 3]), (0.95, [2, 0, 3, 1]),
    (1.0, [2, 0, 3, 1])])
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    # Probabilities by id: 0.25, 0.10, 0.50, 0.15, so by rank: id 2, 0, 3, 1 with running
    # mass 0.50, 0.75, 0.90, 1.00 (worked by hand).
    probs = [0.25, 0.10, 0.50, 0.15]
    got = next_token_probs(torch.tensor([probs]).log(), top_p=top_p)
    mass = sum(probs[i] for i in kept)
    want = [[probs[i] / mass if i in kept else 0.0 for i in range(4)]]
    expect_close(got, want, f"next_token_probs(top_p={top_p}) for probabilities {probs}",
                 rel=1e-5, abs=1e-6,
                 hint=f"keep the most likely tokens until their mass reaches {top_p}: here ids "
                      f"{kept}; the token that crosses the line is kept, and the rest renormalised")


def test_top_p_reached_exactly_keeps_no_more():
    # Four equal logits: probabilities exactly 1/4 each, running mass 0.25, 0.5, ... exactly.
    # top_p = 0.5 is reached by the first two (ties go to the lower ids); the third is not needed.
    got = next_token_probs(torch.zeros(1, 4), top_p=0.5)
    expect_close(got, [[0.5, 0.5, 0.0, 0.0]], "next_token_probs(4 equal logits, top_p=0.5)",
                 hint="drop a token when the mass before it already reaches top_p (>=, not >)")


def test_top_p_of_one_keeps_everything_in_float32():
    # In float32, 0.5 + 0.5 is exactly 1.0: the mass before the third token already equals
    # top_p = 1, yet top_p = 1 must keep every token, however unlikely.
    logits = torch.tensor([[0.0, 0.0, -20.0]])
    got = next_token_probs(logits, top_p=1.0)
    want = torch.softmax(logits.double(), dim=-1)
    expect_close(got, want, "next_token_probs([[0, 0, -20]] in float32, top_p=1.0)", rel=1e-4,
                 abs=0.0, hint="top_p=1 keeps everything: skip the nucleus cut when top_p is 1 "
                               "(float rounding can make the running mass reach 1.0 early)")


# --- greedy limits ---


def test_greedy_limits_pick_the_argmax():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 9, generator=g)
    best = logits.argmax(dim=-1, keepdim=True)
    logits.scatter_add_(1, best, torch.full((6, 1), 0.5))  # a clear winner: temperature 1e-3
    for name, kwargs in (("temperature=0", dict(temperature=0.0)),
                         ("top_k=1", dict(top_k=1)),
                         ("temperature=1e-3", dict(temperature=1e-3))):
        got = sample_next(logits, generator=torch.Generator().manual_seed(2), **kwargs)
        expect(got.dtype == torch.long and tuple(got.shape) == (6, 1),
               f"sample_next({name}) returned {got.dtype} of shape {tuple(got.shape)}; "
               "expected torch.long (6, 1)", hint="torch.multinomial(probs, 1) has this shape")
        expect(torch.equal(got, best), f"sample_next({name}) gave {got.flatten().tolist()}, the "
                                       f"argmax is {best.flatten().tolist()}",
               hint="temperature 0 means greedy; top_k=1 keeps only the largest logit")
    tie = sample_next(torch.tensor([[1.0, 3.0, 3.0]]), temperature=0.0)
    expect(tie.item() == 1, f"greedy on [1, 3, 3] gave id {tie.item()}, expected 1",
           hint="among equal maxima, greedy takes the lowest id (what argmax does)")
    probs = next_token_probs(torch.tensor([[1.0, 3.0, 2.0]]), temperature=0.0)
    expect_close(probs, [[0.0, 1.0, 0.0]], "next_token_probs([1, 3, 2], temperature=0)",
                 hint="greedy puts all the probability on the argmax (do not divide by 0)")


def test_greedy_draws_nothing_from_the_generator():
    # Greedy is the argmax: the generator must come out as it went in, so that the draws
    # after a greedy step are the ones a seeded run would make without it.
    logits = torch.randn(4, 9, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(6)
    before = g.get_state()
    sample_next(logits, temperature=0.0, generator=g)
    expect(torch.equal(g.get_state(), before),
           "sample_next(temperature=0, generator=g) moved g's random state",
           hint="at temperature 0 return probs.argmax(dim=-1, keepdim=True): drawing from the "
                "one-hot distribution gives the same token but uses up random numbers")
    model = fake_model(block_size=4)
    generate(model, torch.tensor([[1, 2]]), 5, temperature=0.0, generator=g)
    expect(torch.equal(g.get_state(), before),
           "generate(temperature=0, generator=g) moved g's random state",
           hint="greedy decoding draws nothing: take the argmax at temperature 0")


# --- draws ---

# Chi-square critical values at significance 0.001, by degrees of freedom (standard tables).
CHI2_CRITICAL = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 7: 24.322}


@pytest.mark.parametrize("temperature,top_k,top_p", [
    (1.0, None, None), (0.7, None, None), (1.5, 4, None), (1.0, None, 0.8), (0.8, 5, 0.95)])
def test_draws_follow_the_distribution(temperature, top_k, top_p):
    logits = [1.2, -0.3, 0.4, 2.0, 0.0, -1.5, 0.9, 0.5]
    n = 20_000
    draws = sample_next(torch.tensor([logits]).repeat(n, 1), temperature=temperature,
                        top_k=top_k, top_p=top_p, generator=torch.Generator().manual_seed(3))
    counts = np.bincount(draws.flatten().numpy(), minlength=len(logits))
    expected = n * oracle_probs(logits, temperature, top_k, top_p)
    outside = [i for i in range(len(logits)) if expected[i] == 0 and counts[i] > 0]
    expect(not outside, f"tokens {outside} were drawn but lie outside the top-k / nucleus set",
           hint="set the dropped logits to -inf (or their probabilities to 0) before drawing")
    support = expected > 0
    chi2 = float(((counts[support] - expected[support]) ** 2 / expected[support]).sum())
    critical = CHI2_CRITICAL[int(support.sum()) - 1]
    expect(chi2 < critical,
           f"{n} draws at temperature={temperature}, top_k={top_k}, top_p={top_p}:\n"
           f"  expected counts {np.round(expected).astype(int).tolist()}\n"
           f"  got counts      {counts.tolist()}\n"
           f"  chi-square {chi2:.1f} >= {critical} (p < 0.001)",
           hint="draw with torch.multinomial(probs, 1, generator=generator) (or the argmax "
                "of log-probs plus Gumbel noise drawn from the generator), never the plain "
                "argmax; temperature divides the logits")


@given(data=st.data())
def test_any_setting_matches_the_oracle_and_draws_stay_in_its_support(data):
    vocab = data.draw(st.integers(2, 12), label="vocab")
    # Half-integers in a small range: ties are common.
    row = data.draw(st.lists(st.integers(-6, 6).map(lambda v: v / 2), min_size=vocab,
                             max_size=vocab), label="logits")
    temperature = data.draw(st.sampled_from([0.5, 1.0, 2.0]), label="temperature")
    top_k = data.draw(st.none() | st.integers(1, vocab + 2), label="top_k")
    top_p = data.draw(st.none() | st.floats(0.05, 1.0), label="top_p")
    assume(nucleus_is_clear_cut(row, temperature, top_k, top_p))
    logits = torch.tensor([row], dtype=torch.float64)
    want = oracle_probs(row, temperature, top_k, top_p)
    got = next_token_probs(logits, temperature, top_k, top_p)
    expect_close(got, [want], f"next_token_probs(temperature={temperature}, top_k={top_k}, "
                 f"top_p={top_p}) for logits {row}", rel=1e-9, abs=1e-12,
                 hint="ties at the top-k cut go to the lower id; top_p keeps the shortest "
                      "most-likely prefix whose mass is >= top_p")
    draws = sample_next(logits.repeat(200, 1), temperature, top_k, top_p,
                        generator=torch.Generator().manual_seed(4)).flatten().tolist()
    stray = sorted({t for t in draws if want[t] == 0})
    expect(not stray, f"drew tokens {stray}, which the filters removed (logits {row})")


def test_draws_come_from_the_callers_generator():
    logits = torch.zeros(50, 10)
    global_state = torch.get_rng_state()
    first = sample_next(logits, generator=torch.Generator().manual_seed(5))
    second = sample_next(logits, generator=torch.Generator().manual_seed(5))
    expect(torch.equal(first, second), "two draws with generators seeded alike differ",
           hint="pass generator=generator to torch.multinomial")
    expect(torch.equal(torch.get_rng_state(), global_state),
           "sample_next(..., generator=g) changed torch's global random state",
           hint="draw with the caller's generator only")
    other = sample_next(logits, generator=torch.Generator().manual_seed(6))
    expect(not torch.equal(first, other), "generators with different seeds drew the same 50 "
                                          "tokens from a uniform distribution",
           hint="draw at random with the generator (torch.multinomial, or Gumbel noise then "
                "argmax); the plain argmax gives the same token every time")


# --- bad arguments ---

BAD = [
    ("temperature", dict(temperature=-0.5)),
    ("temperature", dict(temperature=float("nan"))),
    ("temperature", dict(temperature=float("inf"))),
    ("top_k", dict(top_k=0)),
    ("top_k", dict(top_k=-2)),
    ("top_k", dict(top_k=2.5)),
    ("top_p", dict(top_p=0.0)),
    ("top_p", dict(top_p=-0.1)),
    ("top_p", dict(top_p=1.5)),
    ("top_p", dict(top_p=float("nan"))),
]


@pytest.mark.parametrize("argument,kwargs", BAD,
                         ids=[f"{k}={v}" for _, kwargs in BAD for k, v in kwargs.items()])
def test_bad_settings_are_clear_errors(argument, kwargs):
    for function in (sample_next, next_token_probs):
        with pytest.raises(ValueError) as info:
            function(torch.zeros(1, 5), **kwargs)
        expect(argument in str(info.value),
               f"{function.__name__}(logits, {kwargs}) raised ValueError({str(info.value)!r}), "
               f"which does not name {argument}",
               hint="say which argument is wrong and what values it takes")


@pytest.mark.parametrize("argument,kwargs", BAD,
                         ids=[f"{k}={v}" for _, kwargs in BAD for k, v in kwargs.items()])
def test_check_sampling_args_names_the_bad_argument(argument, kwargs):
    settings = dict(temperature=1.0, top_k=None, top_p=None) | kwargs
    with pytest.raises(ValueError) as info:
        check_sampling_args(**settings)
    expect(argument in str(info.value),
           f"check_sampling_args({settings}) raised ValueError({str(info.value)!r}), which "
           f"does not name {argument}", hint="say which argument is wrong and what it takes")


@pytest.mark.parametrize("settings", [(1.0, None, None), (0.0, None, None), (0, 1, 1.0),
                                      (0.7, 40, 0.9), (2.5, 5, None), (1.0, None, 1e-3)])
def test_check_sampling_args_accepts_good_settings(settings):
    # Kata 16's generate calls it as it is: it must return None for every good setting.
    got = check_sampling_args(*settings)
    expect(got is None, f"check_sampling_args{settings} returned {got!r}; expected None",
           hint="raise a ValueError for a bad setting, return nothing for good ones (an int "
                "temperature such as 0 is good)")


def test_logits_that_are_not_2d_are_a_clear_error():
    for function in (sample_next, next_token_probs):
        with pytest.raises(ValueError) as info:
            function(torch.zeros(2, 3, 5))
        expect("(2, 3, 5)" in str(info.value),
               f"{function.__name__} of logits shaped (2, 3, 5) raised ValueError("
               f"{str(info.value)!r}), which does not give the shape",
               hint="say what it got and what it needs: 'logits must be (batch, vocab), got "
                    "shape (2, 3, 5)'")


def test_defaults_are_temperature_1_and_the_logits_dtype():
    logits = 3 * torch.randn(64, 7, generator=torch.Generator().manual_seed(3),
                             dtype=torch.float64)
    plain = sample_next(logits, generator=torch.Generator().manual_seed(8))
    at_one = sample_next(logits, temperature=1.0, generator=torch.Generator().manual_seed(8))
    expect(torch.equal(plain, at_one), "sample_next without a temperature drew differently "
           "from temperature=1.0 with the same seed", hint="the default temperature is 1.0")
    for temperature in (0.0, 1.0):
        probs = next_token_probs(logits, temperature=temperature)
        expect(probs.dtype == torch.float64, f"next_token_probs of float64 logits at "
               f"temperature {temperature} returned {probs.dtype}",
               hint="keep the logits' dtype (one_hot gives integers: .to(logits.dtype))")


def fake_model(block_size=4, vocab=10):
    """A stand-in for a GPT: predicts (last token + 1) mod vocab at every position, and
    records what it was fed and whether autograd was on."""

    class Counter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(block_size=block_size, n_layer=1, vocab_size=vocab)
            self.fed, self.grad_enabled = [], []

        def forward(self, idx, targets=None, kv_cache=None):
            if idx.size(1) > block_size:
                raise ValueError(f"{idx.size(1)} tokens but block_size is {block_size}")
            self.fed.append(idx.clone())
            self.grad_enabled.append(torch.is_grad_enabled())
            return 10.0 * torch.nn.functional.one_hot((idx + 1) % vocab, vocab).float(), None

    return Counter()


BAD_GENERATE = [
    ("empty prompt", dict(idx=torch.zeros(1, 0, dtype=torch.long))),
    ("a 1-D prompt", dict(idx=torch.tensor([1, 2]))),
    ("max_new_tokens=-1", dict(max_new_tokens=-1)),
    ("temperature=-1 (even with nothing to generate)", dict(temperature=-1.0, max_new_tokens=0)),
]


@pytest.mark.parametrize("case,kwargs", BAD_GENERATE, ids=[b[0] for b in BAD_GENERATE])
def test_bad_generate_calls_are_clear_errors(case, kwargs):
    call = dict(model=fake_model(), idx=torch.tensor([[1, 2]]), max_new_tokens=3) | kwargs
    try:
        generate(**call)
    except ValueError:
        return
    except Exception as err:
        raise AssertionError(f"generate with {case} raised {type(err).__name__}: {err}; expected "
                             "a ValueError that says what is wrong") from err
    raise AssertionError(f"generate with {case} returned without an error; expected ValueError"
                         "\n  hint: check the prompt, max_new_tokens and the sampling settings "
                         "before the loop")


# --- the generate loop ---


def test_generate_appends_tokens_and_crops_the_context():
    model = fake_model(block_size=4)
    prompt = torch.tensor([[3, 4], [8, 9]])
    out = generate(model, prompt, max_new_tokens=6, temperature=0.0)
    want = [[3, 4, 5, 6, 7, 8, 9, 0], [8, 9, 0, 1, 2, 3, 4, 5]]
    expect(out.tolist() == want, f"generate from {prompt.tolist()}, greedy, 6 tokens:\n"
                                 f"  expected {want}\n  got      {out.tolist()}",
           hint="each step: logits of the LAST position, pick a token, torch.cat it to idx")
    fed = [f.tolist() for f in model.fed]
    want_fed = [[row[max(0, n - 4):n] for row in want] for n in range(2, 8)]
    expect(fed == want_fed, f"what the model was fed at each step:\n  expected {want_fed}\n"
                            f"  got      {fed}",
           hint="feed idx[:, -block_size:]: at most the last block_size tokens")
    expect(not any(model.grad_enabled), "generate ran the model with autograd on",
           hint="decorate generate with @torch.no_grad(): no graph is needed for sampling")


def small_gpt(seed, **changes):
    config = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=16)
    torch.manual_seed(seed)
    model = GPT(replace(config, **changes)).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # larger weights than the init, so the predictions are not uniform
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    return model.eval()


def test_the_same_seed_gives_the_same_text():
    model = small_gpt(seed=7)
    prompt = torch.tensor([[1, 2, 3]])

    def text(seed):
        return generate(model, prompt, 20, temperature=1.0,
                        generator=torch.Generator().manual_seed(seed)).tolist()

    eleven = text(11)
    expect(eleven == text(11), "two generate calls with generators seeded 11 differ",
           hint="pass the generator down to sample_next")
    expect(eleven != text(12), "seeds 11 and 12 generated the same 20 tokens",
           hint="sample with torch.multinomial rather than taking the argmax")


def test_generate_turns_dropout_off_and_restores_the_mode():
    model = small_gpt(seed=8, dropout=0.5).train()
    plain = small_gpt(seed=8)  # the same weights without dropout
    prompt = torch.tensor([[4, 5]])
    got = generate(model, prompt, 12, generator=torch.Generator().manual_seed(9))
    want = generate(plain, prompt, 12, generator=torch.Generator().manual_seed(9))
    expect(torch.equal(got, want), "a model in train() mode with dropout 0.5 generated "
                                   "different tokens from its dropout-free twin",
           hint="switch to model.eval() for the loop")
    expect(model.training, "generate left a model that was in train() mode in eval() mode",
           hint="remember model.training and call model.train(was_training) at the end "
                "(try/finally)")


# --- the KV-cache path ---


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
@pytest.mark.parametrize("new_tokens", [13, 30], ids=["fits in block_size", "past block_size"])
def test_cached_and_cropping_paths_give_the_same_tokens(attention, new_tokens):
    model = small_gpt(seed=10, attention=attention)
    prompt = torch.tensor([[1, 2, 3], [7, 7, 0]])
    for settings in (dict(temperature=0.0), dict(temperature=0.9, top_k=6, top_p=0.95)):
        crop, cached = (generate(model, prompt, new_tokens, **settings, use_cache=use_cache,
                                 generator=torch.Generator().manual_seed(12))
                        for use_cache in (False, True))
        expect(torch.equal(crop, cached),
               f"{new_tokens} tokens with {settings}:\n  cropping path {crop[0].tolist()}\n"
               f"  cached path   {cached[0].tolist()}",
               hint="prefill the prompt into a KVCache, then feed only the token just drawn; "
                    "when the cache is full (block_size), start a new cache from "
                    "idx[:, -block_size:]")


def test_the_cached_path_feeds_one_token_per_step():
    model = small_gpt(seed=13)
    fed = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: fed.append((args[0] if args else kwargs["idx"]).size(1)),
        with_kwargs=True)
    generate(model, torch.tensor([[1, 2, 3, 4, 5]]), 8, use_cache=True)
    expect(len(fed) in (8, 9) and fed[0] == 5 and all(n == 1 for n in fed[1:]),
           f"tokens fed per forward call: {fed}; expected the 5-token prompt once, then one "
           "token per step", hint="with a KVCache the model already holds every earlier "
                                  "position: model(idx[:, -1:], kv_cache=cache)")
