"""Specs for kata 22. Oracles: the advantages, k3 and the clipped objective written out again
below in plain Python floats (math, float64), one number at a time; the exact KL of two
categorical distributions; gradients worked out by hand (d rho / d logp = rho) and, for the
REINFORCE identity, a second autograd computation through a different formula; a planted
model whose replies are known in advance; and a tiny policy that learns a one-token answer.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from grpo import group_advantages, grpo_batch, grpo_loss, grpo_step, k3_kl, rewards, sample_group
from hypothesis import given
from hypothesis import strategies as st
from modern import ModernConfig, ModernGPT
from sft import IGNORE_INDEX, ChatTokenizer, collate, prompt_for_reply, render_chat
from tasks import Task

from harness.checks import expect, expect_close

AGGREGATIONS = ("grpo", "dr_grpo", "dapo")


def tensor_of(got, shape, what, hint=""):
    """The learner's result must be a real tensor of this shape before values are compared."""
    found = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
    expect(type(got) is torch.Tensor and tuple(got.shape) == tuple(shape),
           f"{what}: expected a torch.Tensor of shape {tuple(shape)}, got {found}", hint=hint)
    return got


def first_match(got, candidates):
    """The hint of the first wrong formula whose numbers the learner's output reproduces."""
    for want, hint in candidates:
        if want is not None and torch.allclose(got.double(), want.double(), rtol=1e-7,
                                               atol=1e-9, equal_nan=True):
            return hint
    return ""


# --------------------------------------------------------------------------- advantages


def advantages_oracle(groups, eps=1e-6, scale=True, ddof=0, eps_inside=False):
    """(r - mean) / (std + eps) per group, in Python floats; ddof=1 and eps_inside give the
    classic wrong versions, for the hints."""
    out = []
    for g in groups:
        n = len(g)
        m = math.fsum(g) / n
        if not scale:
            out.append([r - m for r in g])
            continue
        var = math.fsum((r - m) ** 2 for r in g) / (n - ddof) if n > ddof else math.nan
        std = math.sqrt(var + eps) if eps_inside else math.sqrt(var) + eps
        out.append([(r - m) / std if std else math.nan for r in g])
    return torch.tensor(out, dtype=torch.float64)


def advantages_of(r, **kw):
    got = group_advantages(r, **kw)
    return tensor_of(got, r.shape, f"group_advantages of rewards of shape {tuple(r.shape)}",
                     hint="one advantage per reward, in the rewards' shape: (G,) or (n_groups, G)")


def advantage_hint(got, groups, eps):
    flat = [r for g in groups for r in g]
    return first_match(got.reshape(len(groups), -1), [
        (advantages_oracle(groups, eps, ddof=1),
         "that is the sample std (divides by G - 1, torch's default): use the population "
         "std, rewards.std(dim=-1, unbiased=False) (correction=0), as the lesson does"),
        (advantages_oracle(groups, eps, eps_inside=True),
         "the eps goes on the std, (r - mean) / (std + eps), not inside the square root"),
        (advantages_oracle(groups, 0.0),
         "add eps to the std: (r - mean) / (std + eps); without it an all-equal group is 0 / 0"),
        (advantages_oracle([flat], eps).reshape(len(groups), -1),
         "normalize within each group (each row, dim=-1, keepdim=True), not over the whole batch"),
    ]) or "A = (r - mean(r)) / (std(r) + eps) over each group's G rewards, population std"


reward_values = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(-2, 2, allow_nan=False))


@st.composite
def reward_groups(draw):
    n_groups, size = draw(st.integers(1, 4)), draw(st.integers(1, 12))
    return [draw(st.lists(reward_values, min_size=size, max_size=size)) for _ in range(n_groups)]


@given(groups=reward_groups(), eps=st.sampled_from([1e-6, 1e-4, 0.1]))
def test_advantages_match_the_formula_with_population_std(groups, eps):
    r = torch.tensor(groups, dtype=torch.float64)
    got = advantages_of(r, eps=eps)
    expect(got.dtype == torch.float64, f"group_advantages of float64 rewards returned {got.dtype}",
           hint="stay in the rewards' dtype: tensor operations on r do")
    expect_close(got, advantages_oracle(groups, eps), f"group_advantages({groups}, eps={eps})",
                 rel=1e-9, abs=1e-9, hint=advantage_hint(got, groups, eps))


@given(groups=reward_groups())
def test_one_group_as_a_1d_tensor(groups):
    r = torch.tensor(groups[0], dtype=torch.float64)
    got = advantages_of(r)
    expect_close(got, advantages_oracle(groups[:1])[0], f"group_advantages({groups[0]}) (G,)",
                 rel=1e-9, abs=1e-9, hint="a 1-D tensor is one group: reduce over dim=-1")


@given(groups=reward_groups(), scale=st.booleans())
def test_advantages_have_mean_zero_in_every_group(groups, scale):
    got = advantages_of(torch.tensor(groups, dtype=torch.float64), scale=scale)
    sums = got.sum(dim=-1)
    # Rounding only: dividing by a std near eps = 1e-6 magnifies it, hence the looser bound.
    size = max(1.0, max(abs(v) for g in groups for v in g)) * len(groups[0])
    expect(bool((sums.abs() <= (1e-3 if scale else 1e-12) * size).all()),
           f"group_advantages({groups}, scale={scale}) sums to {sums.tolist()} per group; "
           "every group's advantages must add up to 0",
           hint="subtract each group's own mean: r - r.mean(dim=-1, keepdim=True)")


def test_worked_example_a_group_of_four():
    """The lesson's numbers: one right reply out of four, then two out of four."""
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    third = math.sqrt(3) / 3  # 0.25 / sqrt(0.1875): std 0.4330
    want = torch.tensor([[3 * third, -third, -third, -third], [1.0, 1.0, -1.0, -1.0]])
    got = advantages_of(r)
    expect_close(got, want, "group_advantages([[1, 0, 0, 0], [1, 1, 0, 0]])", rel=1e-5,
                 hint=advantage_hint(got, r.tolist(), 1e-6))
    expect_close(advantages_of(r, scale=False), [[0.75, -0.25, -0.25, -0.25],
                                                  [0.5, 0.5, -0.5, -0.5]],
                 "group_advantages([[1, 0, 0, 0], [1, 1, 0, 0]], scale=False)", rel=1e-6,
                 hint="scale=False (Dr. GRPO) is r - mean(r) alone, no division by the std")


def test_all_equal_group_gives_exactly_zero_not_nan():
    r = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5],
                      [1.0, 0.0, 1.0, 1.0]])
    for scale in (True, False):
        got = advantages_of(r, scale=scale)
        expect(bool(torch.isfinite(got).all()),
               f"group_advantages(..., scale={scale}) gave {got.tolist()}: NaN or inf",
               hint="a group whose rewards are all equal has std 0: add eps, "
                    "(r - mean) / (std + eps), so 0 / 0 never happens")
        expect(bool((got[:3] == 0).all()),
               f"all-equal groups [1,1,1,1], [0,0,0,0], [0.5,0.5,0.5,0.5] (scale={scale}) gave "
               f"{got[:3].tolist()}; expected exactly 0: no reply beat its group, no signal",
               hint="r - r.mean(dim=-1, keepdim=True) is exactly 0 there; divide by std + eps")
        expect(bool((got[3] != 0).all()), f"the mixed group [1, 0, 1, 1] (scale={scale}) gave "
               f"{got[3].tolist()}", hint="normalize each group on its own")


def test_eps_is_added_to_the_std():
    got = advantages_of(torch.tensor([1.0, 0.0], dtype=torch.float64), eps=0.5)
    # mean 0.5, population std 0.5: 0.5 / (0.5 + 0.5) = 0.5 (sqrt(var + eps) would give 0.577)
    expect_close(got, [0.5, -0.5], "group_advantages([1, 0], eps=0.5)", rel=1e-12,
                 hint=advantage_hint(got, [[1.0, 0.0]], 0.5))


@given(groups=reward_groups())
def test_scale_false_is_dr_grpo_centering_only(groups):
    got = advantages_of(torch.tensor(groups, dtype=torch.float64), scale=False)
    expect_close(got, advantages_oracle(groups, scale=False),
                 f"group_advantages({groups}, scale=False)", rel=1e-12, abs=1e-12,
                 hint="scale=False (Dr. GRPO) returns r - mean(r) per group: no std, no eps")


def test_advantages_reject_a_3d_tensor():
    with pytest.raises(ValueError, match="rewards"):
        group_advantages(torch.zeros(2, 3, 4))


# --------------------------------------------------------------------------- k3


def k3_oracle(logp, ref):
    d = ref - logp
    return math.exp(d) - d - 1


log_probs = st.floats(-8, 0, allow_nan=False)


@given(pairs=st.lists(st.tuples(log_probs, log_probs), min_size=1, max_size=20))
def test_k3_matches_its_formula(pairs):
    logp = torch.tensor([p for p, _ in pairs], dtype=torch.float64)
    ref = torch.tensor([q for _, q in pairs], dtype=torch.float64)
    got = tensor_of(k3_kl(logp, ref), logp.shape, "k3_kl(logp, ref_logp)",
                    hint="k3 is elementwise: one number per token")
    want = torch.tensor([k3_oracle(p, q) for p, q in pairs], dtype=torch.float64)
    hint = first_match(got, [
        (torch.tensor([k3_oracle(q, p) for p, q in pairs], dtype=torch.float64),
         "the log ratio is the wrong way round: r = pi_ref / pi, log r = ref_logp - logp"),
        (ref - logp, "that is log(pi_ref / pi) alone (k1): k3 = r - log r - 1"),
    ]) or "k3 = exp(ref_logp - logp) - (ref_logp - logp) - 1"
    expect_close(got, want, f"k3_kl at {pairs[:3]}...", rel=1e-9, abs=1e-12, hint=hint)


@given(pairs=st.lists(st.tuples(log_probs, log_probs), min_size=1, max_size=20))
def test_k3_is_never_negative_and_zero_when_equal(pairs):
    logp = torch.tensor([p for p, _ in pairs], dtype=torch.float64)
    ref = torch.tensor([q for _, q in pairs], dtype=torch.float64)
    got = tensor_of(k3_kl(logp, ref), logp.shape, "k3_kl(logp, ref_logp)")
    expect(bool((got >= -1e-12).all()), f"k3_kl at {pairs[:4]}... gave {got.tolist()[:4]}...: "
           "negative", hint="r - log r - 1 >= 0 for every r > 0: check the signs")
    apart = (logp - ref).abs() > 1e-3
    expect(bool((got[apart] > 0).all()), f"k3_kl gave {got.tolist()[:4]}... where the two "
           "log-probs differ; expected > 0", hint="k3 = exp(ref_logp - logp) - (ref_logp - "
           "logp) - 1")
    same = tensor_of(k3_kl(logp, logp.clone()), logp.shape, "k3_kl(logp, logp)")
    expect(bool((same == 0).all()), f"k3_kl(logp, logp) gave {same.tolist()[:4]}...; expected 0",
           hint="where the policy and the reference agree the penalty is exp(0) - 0 - 1 = 0")


def test_k3_averages_to_the_kl_under_the_policy():
    """Sampled from pi, k3 is an unbiased estimate of KL(pi || pi_ref): its exact expectation
    sum_y pi(y) k3(y) is the KL itself."""
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(6, generator=g, dtype=torch.float64).log_softmax(-1)
    ref = (2 * torch.randn(6, generator=g, dtype=torch.float64)).log_softmax(-1)
    got = tensor_of(k3_kl(logp, ref), logp.shape, "k3_kl of every outcome of a 6-way pi")
    expect_close((logp.exp() * got).sum(), (logp.exp() * (logp - ref)).sum(),
                 "sum_y pi(y) * k3_kl(log pi(y), log pi_ref(y)) against KL(pi || pi_ref)",
                 rel=1e-10, hint="with r = pi_ref / pi: E_pi[r] = 1 and E_pi[-log r] = KL; "
                                 "k3 = r - log r - 1, the ratio reference over policy")


# --------------------------------------------------------------------------- the loss


def loss_oracle(logp, old, ref, adv, mask, clip_eps, beta, aggregation, *, use_max=False,
                clip_advantage=False, kl_reversed=False, kl_plus=False, count_all=False):
    """-aggregate(min(rho A, clip(rho) A) - beta k3) in Python floats; the keyword switches
    are the classic mistakes, for the hints."""
    B, T = len(logp), len(logp[0])
    total, per_row, tokens = 0.0, [], 0
    for b in range(B):
        row, n = 0.0, 0
        for t in range(T):
            if not (mask[b][t] or count_all):
                continue
            rho = math.exp(logp[b][t] - old[b][t])
            a = adv[b]
            if clip_advantage:
                term = rho * min(max(a, 1 - clip_eps), 1 + clip_eps)
            else:
                pick = max if use_max else min
                term = pick(rho * a, min(max(rho, 1 - clip_eps), 1 + clip_eps) * a)
            if beta:
                k3 = k3_oracle(ref[b][t], logp[b][t]) if kl_reversed else \
                    k3_oracle(logp[b][t], ref[b][t])
                term += beta * k3 if kl_plus else -beta * k3
            row += term
            n += 1
        per_row.append(row / max(n, 1))
        total += row
        tokens += n
    if aggregation == "grpo":
        return -sum(per_row) / B
    if aggregation == "dr_grpo":
        return -total / (B * T)
    return -total / tokens


def scalar_loss(*args, **kw):
    got = grpo_loss(*args, **kw)
    found = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
    expect(type(got) is torch.Tensor and got.dim() == 0,
           f"grpo_loss returned {found}; expected a 0-dim torch.Tensor (the loss)",
           hint="aggregate the per-token objective to one number and negate it")
    return got


def loss_hint(got, args, clip_eps, beta, aggregation):
    candidates = []
    for kw, hint in [
        (dict(use_max=True), "max picks the optimistic term: the clipped objective takes the "
                             "MIN of rho * A and clip(rho) * A"),
        (dict(clip_advantage=True), "clip the ratio rho to [1 - eps, 1 + eps], not the "
                                    "advantage"),
        (dict(kl_reversed=True), "k3's log ratio is the wrong way round: "
                                 "exp(ref_logp - logp) - (ref_logp - logp) - 1"),
        (dict(kl_plus=True), "the KL penalty is subtracted from the objective, so the loss "
                             "(its negative) gains + kl_beta * k3"),
        (dict(count_all=True), "only tokens where mask is true count, in the sums and in the "
                               "token counts: padding and prompt positions are not part of "
                               "any reply"),
    ]:
        candidates.append((torch.tensor(loss_oracle(*args, clip_eps, beta, aggregation, **kw),
                                        dtype=torch.float64), hint))
    for other in AGGREGATIONS:
        if other != aggregation:
            candidates.append((torch.tensor(loss_oracle(*args, clip_eps, beta, other),
                                            dtype=torch.float64),
                               f"that is the {other!r} aggregation, asked for {aggregation!r}"))
    hint = first_match(got.detach().reshape(()), candidates)
    return hint or ("per token min(rho * A, clip(rho, 1 - eps, 1 + eps) * A) - kl_beta * k3, "
                    "rho = exp(logp - old_logp); then aggregate over the masked tokens and "
                    "negate")


@st.composite
def loss_cases(draw):
    B, T = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    mask = []
    for _ in range(B):
        row = draw(st.lists(st.booleans(), min_size=T, max_size=T))
        row[draw(st.integers(0, T - 1))] = True  # every reply has at least one token
        mask.append(row)
    values = st.floats(-5, 0, allow_nan=False)
    shifts = st.floats(-0.7, 0.7, allow_nan=False)  # rho from 0.5 to 2: both sides of the clip
    logp = [draw(st.lists(values, min_size=T, max_size=T)) for _ in range(B)]
    old = [[v + draw(shifts) for v in row] for row in logp]
    ref = [[v + draw(shifts) for v in row] for row in logp]
    adv = draw(st.lists(st.floats(-3, 3, allow_nan=False), min_size=B, max_size=B))
    return logp, old, ref, adv, mask


@given(case=loss_cases(), clip_eps=st.sampled_from([0.1, 0.2, 0.3]),
       beta=st.sampled_from([0.0, 0.04, 0.5]), aggregation=st.sampled_from(AGGREGATIONS))
def test_loss_matches_the_clipped_objective(case, clip_eps, beta, aggregation):
    logp, old, ref, adv, mask = case
    t = [torch.tensor(v, dtype=torch.float64) for v in (logp, old, ref, adv)]
    got = scalar_loss(t[0], t[1], t[2], t[3], torch.tensor(mask), clip_eps=clip_eps,
                      kl_beta=beta, aggregation=aggregation)
    want = loss_oracle(logp, old, ref, adv, mask, clip_eps, beta, aggregation)
    expect_close(got, want, f"grpo_loss (B={len(logp)}, T={len(logp[0])}, clip_eps={clip_eps}, "
                 f"kl_beta={beta}, aggregation={aggregation!r})", rel=1e-9, abs=1e-12,
                 hint=loss_hint(got, case, clip_eps, beta, aggregation))


# The lesson's example: two replies with rho = 1 (old = current), so each token's objective is
# its reply's advantage. Reply 0 is right (A = 1) with 1 token; reply 1 wrong (A = -0.5) with 3.
EXAMPLE_MASK = torch.tensor([[False, False, True, False], [False, True, True, True]])
EXAMPLE_ADV = torch.tensor([1.0, -0.5], dtype=torch.float64)
EXAMPLE_LOSS = {
    "grpo": -(1.0 / 1 + (-1.5) / 3) / 2,  # per-reply token means 1 and -0.5: -0.25
    "dr_grpo": -(1.0 - 1.5) / (2 * 4),  # sum -0.5 over B * T = 8 slots: 0.0625
    "dapo": -(1.0 - 1.5) / 4,  # sum -0.5 over the 4 reply tokens: 0.125
}


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_each_aggregation_on_replies_of_unequal_length(aggregation):
    logp = torch.log(torch.tensor([[0.5, 0.5, 0.3, 0.5], [0.5, 0.2, 0.4, 0.6]],
                                  dtype=torch.float64))
    got = scalar_loss(logp, logp.clone(), None, EXAMPLE_ADV, EXAMPLE_MASK,
                      aggregation=aggregation)
    others = [(torch.tensor(v, dtype=torch.float64), f"that is the {k!r} aggregation")
              for k, v in EXAMPLE_LOSS.items() if k != aggregation]
    rules = {"grpo": "mean over each reply's own tokens, then mean over the B replies",
             "dr_grpo": "sum over every reply token / (B * T), T = the mask's width",
             "dapo": "sum over every reply token / the number of reply tokens in the batch"}
    hint = first_match(got.detach().reshape(()), others) or rules[aggregation]
    expect_close(got, EXAMPLE_LOSS[aggregation],
                 f"grpo_loss(aggregation={aggregation!r}) with A = [1, -0.5], reply lengths "
                 "[1, 3] of T = 4, rho = 1", rel=1e-9, hint=f"{hint} ({rules[aggregation]})")


def test_unknown_aggregation_is_a_value_error():
    logp = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="aggregation"):
        grpo_loss(logp, logp, None, torch.zeros(1), torch.ones(1, 2, dtype=torch.bool),
                  aggregation="mean")


def clip_case():
    """Four tokens with rho = 0.5, 0.9, 1.1, 1.5 (logp = 0, old = -log rho), in a reply with
    A = +1 and one with A = -1; every aggregation divides by 8 here."""
    rho = torch.tensor([0.5, 0.9, 1.1, 1.5], dtype=torch.float64)
    logp = torch.zeros(2, 4, dtype=torch.float64, requires_grad=True)
    old = (-rho.log()).expand(2, 4)
    loss = scalar_loss(logp, old, None, torch.tensor([1.0, -1.0], dtype=torch.float64),
                       torch.ones(2, 4, dtype=torch.bool), clip_eps=0.2)
    loss.backward()
    expect(logp.grad is not None, "no gradient reached logp through grpo_loss",
           hint="compute rho = exp(logp - old_logp) with torch, no .item() or .detach() on logp")
    # d loss / d logp = -(1/8) * A * rho where the unclipped term is the min, else 0.
    return rho, logp.grad


CLIP_HINT = ("per token min(rho * A, clip(rho, 1 - eps, 1 + eps) * A): the clipped term is a "
             "constant in logp, so where the min picks it the gradient is 0; use min (not max) "
             "and clip rho (not A)")


def test_gradient_is_zero_where_the_clip_binds():
    rho, grad = clip_case()
    # A > 0 and rho = 1.5 > 1.2: min(1.5 A, 1.2 A) = 1.2 A, clipped. A < 0 and rho = 0.5 < 0.8:
    # min(-0.5, -0.8) = -0.8, clipped.
    expect_close([grad[0, 3], grad[1, 0]], [0.0, 0.0],
                 "d loss / d logp at rho = 1.5 with A = +1 and at rho = 0.5 with A = -1 (the "
                 "ratio left the trust region on the side the clip stops)", abs=1e-12,
                 hint=CLIP_HINT)


def test_gradient_flows_where_min_picks_the_unclipped_term():
    rho, grad = clip_case()
    # A > 0 and rho = 0.5: min(0.5, 0.8) = 0.5 is unclipped; A < 0 and rho = 1.5:
    # min(-1.5, -1.2) = -1.5 is unclipped. Inside the region both are unclipped.
    want = torch.tensor([[-0.5, -0.9, -1.1, 0.0], [0.0, 0.9, 1.1, 1.5]], dtype=torch.float64) / 8
    expect_close(grad, want, "d loss / d logp for rho = [0.5, 0.9, 1.1, 1.5], rows A = +1 and "
                 "A = -1 (mean over 8 tokens)", rel=1e-9, abs=1e-12,
                 hint=CLIP_HINT + "; the gradient of rho * A in logp is A * rho")


def masked_case(seed):
    g = torch.Generator().manual_seed(seed)
    # Three replies after prompts of 2, 1 and 3 tokens, then padding (T = 6).
    mask = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 0, 0]]).bool()

    def values():
        return -3 * torch.rand(3, 6, generator=g, dtype=torch.float64)

    return mask, values(), values(), values(), torch.randn(3, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_prompt_and_padding_tokens_carry_no_loss(aggregation):
    mask, logp, old, ref, adv = masked_case(0)
    _, other_logp, other_old, other_ref, _ = masked_case(1)
    losses, grads = [], []
    for lp, od, rf in ((logp, old, ref),
                       (torch.where(mask, logp, other_logp), torch.where(mask, old, other_old),
                        torch.where(mask, ref, other_ref))):
        lp = lp.clone().requires_grad_()
        loss = scalar_loss(lp, od, rf, adv, mask, kl_beta=0.1, aggregation=aggregation)
        loss.backward()
        losses.append(loss.detach())
        grads.append(lp.grad)
    hint = ("only tokens where mask is true count: mask the per-token objective before "
            "summing, and count tokens with the mask")
    expect_close(losses[1], losses[0], f"grpo_loss ({aggregation!r}) after changing logp, "
                 "old_logp and ref_logp at the prompt and padding positions", rel=1e-12,
                 abs=1e-15, hint=hint)
    expect(grads[0] is not None and bool((grads[0][~mask] == 0).all()),
           f"d loss / d logp at masked positions ({aggregation!r}): "
           f"{grads[0][~mask].tolist() if grads[0] is not None else None}; expected all 0",
           hint=hint)


def reinforce_weights(adv, mask, aggregation):
    """d loss / d logp when rho = 1: -A_i over the aggregation's normalizer, on reply tokens."""
    m = mask.double()
    B, T = mask.shape
    if aggregation == "grpo":
        norm = B * m.sum(dim=1, keepdim=True)
    elif aggregation == "dr_grpo":
        norm = torch.full((B, 1), float(B * T), dtype=torch.float64)
    else:
        norm = m.sum()
    return -adv[:, None] * m / norm


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_one_step_gradient_is_reinforce_weighted_by_the_advantage(aggregation):
    mask, logp, _, _, adv = masked_case(2)
    logp.requires_grad_()
    loss = scalar_loss(logp, logp.detach(), None, adv, mask, aggregation=aggregation)
    expect_close(loss, -(reinforce_weights(adv, mask, aggregation) * -1).sum(),
                 f"grpo_loss ({aggregation!r}) with old_logp = logp: rho = 1, so each token's "
                 "objective is its reply's advantage", rel=1e-9,
                 hint="rho = exp(logp - old_logp) = 1 here; min(A, clip(1) A) = A")
    loss.backward()
    expect_close(logp.grad, reinforce_weights(adv, mask, aggregation),
                 f"d loss / d logp ({aggregation!r}) at rho = 1 against -A_i / normalizer on "
                 "each reply token (REINFORCE with the group mean as baseline)", rel=1e-9,
                 abs=1e-12, hint="at rho = 1 the gradient of rho * A is A * d logp: nothing "
                                 "is clipped inside the trust region")


def test_old_logp_is_a_constant_inside_the_loss():
    """Handing the loss the very tensor logp as old_logp must not cancel the gradient."""
    mask, logp, _, _, adv = masked_case(3)
    logp.requires_grad_()
    scalar_loss(logp, logp, None, adv, mask).backward()
    expect(logp.grad is not None, "no gradient reached logp through grpo_loss")
    expect_close(logp.grad, reinforce_weights(adv, mask, "grpo"),
                 "d loss / d logp with old_logp passed as the same tensor as logp", rel=1e-9,
                 abs=1e-12, hint="detach old_logp: rho = exp(logp - old_logp.detach()). The "
                                 "sampling policy is a constant; without the detach rho is "
                                 "exp(0) in every direction and the gradient vanishes")


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_reinforce_identity_through_a_model(aggregation):
    """The same identity on a model's parameters, against a second autograd computation:
    the gradient of -sum_i A_i sum_t log pi(y_it) / normalizer."""
    torch.manual_seed(0)
    model = ModernGPT(ModernConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2,
                                   n_embd=16)).double()
    g = torch.Generator().manual_seed(4)
    x = torch.randint(0, 11, (3, 7), generator=g)
    y = torch.randint(0, 11, (3, 7), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 0]])
    mask = mask.bool()
    y = y.masked_fill(~mask, IGNORE_INDEX)
    adv = torch.tensor([1.3, -0.4, -0.9], dtype=torch.float64)
    params = list(model.parameters())

    def label_logprobs():
        logp = F.log_softmax(model(x)[0], dim=-1)
        return logp.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask

    logp = label_logprobs()
    got = torch.autograd.grad(scalar_loss(logp, logp.detach(), None, adv, mask,
                                          aggregation=aggregation), params)
    surrogate = (reinforce_weights(adv, mask, aggregation) * label_logprobs()).sum()
    want = torch.autograd.grad(surrogate, params)
    expect_close(torch.cat([v.reshape(-1) for v in got]),
                 torch.cat([v.reshape(-1) for v in want]),
                 f"the gradient of grpo_loss ({aggregation!r}) on a model's parameters at "
                 "rho = 1, against REINFORCE weighted by A", rel=1e-8, abs=1e-12,
                 hint="at rho = 1 GRPO's gradient is the policy gradient sum_i A_i grad log "
                      "pi(y_i), normalized like the aggregation")


def test_kl_penalty_pulls_toward_the_reference():
    logp = torch.tensor([[-1.0, -2.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[-1.5, -1.2]], dtype=torch.float64)
    loss = scalar_loss(logp, logp.detach(), ref, torch.zeros(1, dtype=torch.float64),
                       torch.ones(1, 2, dtype=torch.bool), kl_beta=0.5, aggregation="dapo")
    k3 = [math.exp(-0.5) + 0.5 - 1, math.exp(0.8) - 0.8 - 1]  # 0.10653, 0.42554
    expect_close(loss, 0.5 * sum(k3) / 2, "grpo_loss with A = 0, kl_beta = 0.5, logp = [-1, -2],"
                 " ref_logp = [-1.5, -1.2]", rel=1e-9,
                 hint=loss_hint(loss, ([[-1.0, -2.0]], [[-1.0, -2.0]], [[-1.5, -1.2]], [0.0],
                                       [[True, True]]), 0.2, 0.5, "dapo"))
    loss.backward()
    # d/dlogp of +beta * k3 / 2 = beta * (1 - exp(ref - logp)) / 2: logp above ref is pushed down
    want = [0.5 * (1 - math.exp(-0.5)) / 2, 0.5 * (1 - math.exp(0.8)) / 2]
    expect_close(logp.grad, [want], "d loss / d logp from the KL penalty alone", rel=1e-9,
                 hint="subtract kl_beta * k3 from the objective: descending the loss then moves "
                      "logp toward ref_logp")


# --------------------------------------------------------------------------- rewards, batch


def test_rewards_are_a_float_tensor_of_zeros_and_ones():
    task = Task("reverse", "reverse ana", "ana")
    replies = ["ana", " ana ", "an", "", "anaa", "ana ana"]
    got = tensor_of(rewards(task, replies), (6,), f"rewards(task, {replies})",
                    hint="one reward per reply: torch.tensor([...]) of floats")
    expect(got.dtype.is_floating_point, f"rewards returned dtype {got.dtype}; expected floats",
           hint="advantages subtract a mean: 1.0 and 0.0, not True/False or ints")
    expect_close(got, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0], f"rewards for answer 'ana' and {replies}",
                 hint="1.0 where kata 20's is_correct(task, reply) (exact match after strip)")


def test_grpo_batch_trains_only_on_each_reply_and_its_end():
    tok = ChatTokenizer()
    conversations = [[("user", "reverse ana")],
                     [("system", "be brief"), ("user", "count a in ana")],
                     [("user", "reverse bo")]]
    replies = ["ana", "2", ""]
    x, y = grpo_batch(tok, conversations, replies)
    want_x, want_y = collate(tok, [render_chat(tok, m + [("assistant", r)])
                                   for m, r in zip(conversations, replies)])
    tensor_of(x, want_x.shape, "x from grpo_batch", hint="kata 20's collate gives (B, T)")
    tensor_of(y, want_y.shape, "y from grpo_batch")
    for b, reply in enumerate(replies):
        kept = y[b][y[b] != IGNORE_INDEX]
        expect(tok.decode(kept) == reply + "<|end|>",
               f"the labels of reply {b} decode to {tok.decode(kept)!r}; expected "
               f"{reply + '<|end|>'!r}", hint="append (\"assistant\", reply) to its conversation, "
               "render_chat it and collate: the mask keeps the reply and its <|end|> only")
        prompt = prompt_for_reply(tok, conversations[b])
        expect(x[b, :len(prompt)].tolist() == prompt,
               f"row {b} of x does not start with its conversation and the assistant marker",
               hint="each reply goes after its own conversation")
    expect(torch.equal(x, want_x) and torch.equal(y, want_y),
           "grpo_batch differs from collate(tok, [render_chat(tok, messages + [('assistant', "
           "reply)]) ...])", hint="build the batch with kata 20's render_chat and collate")
    with pytest.raises(ValueError, match="repl"):
        grpo_batch(tok, conversations, replies[:2])


# --------------------------------------------------------------------------- sampling


class Planted(ModernGPT):
    """A real tiny ModernGPT (new_cache and the cache work as usual) whose logits are replaced
    by script(tokens seen so far in this row) -> logits. It records every call."""

    def __init__(self, tok, script, seed=0):
        torch.manual_seed(seed)
        super().__init__(ModernConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1,
                                      n_head=2, n_embd=16))
        self.tok, self.script, self.calls, self.seen = tok, script, [], None

    def forward(self, idx, targets=None, kv_cache=None):
        start = 0 if kv_cache is None else len(kv_cache)
        logits, _ = super().forward(idx, kv_cache=kv_cache)
        self.calls.append((tuple(idx.shape), kv_cache is not None, self.training))
        self.seen = idx if start == 0 else torch.cat([self.seen, idx], dim=1)
        B, T = idx.shape
        planted = torch.stack([torch.stack([self.planted(self.seen[b, :start + t + 1].tolist())
                                            for t in range(T)]) for b in range(B)])
        return planted.to(logits.dtype) + 0 * logits, None  # 0 * logits: gradients still flow

    def planted(self, seen):
        """Inside the prompt (no <|assistant|> yet) anything goes: uniform logits."""
        if self.tok.assistant_id not in seen:
            return torch.zeros(self.tok.vocab_size)
        return self.script(seen)

    def reply_so_far(self, seen):
        """The tokens after the last <|assistant|> marker."""
        last = max(i for i, token in enumerate(seen) if token == self.tok.assistant_id)
        return seen[last + 1:]


def logits_for(tok, favoured: dict[str, float]) -> torch.Tensor:
    """-1e4 everywhere (probability exactly 0), except the given tokens (chars or specials)."""
    out = torch.full((tok.vocab_size,), -1e4)
    for name, value in favoured.items():
        out[tok.special[name] if name in tok.special else tok.encode(name)[0]] = value
    return out


def staircase(tok, firsts="abcd"):
    """First token one of `firsts`, equally likely. Then the reply is a (1 token), bb, ccc, or
    d for ever, and <|end|>; after its <|end|> a row only says z."""
    model = None

    def script(seen):
        reply = model.reply_so_far(seen)
        if not reply:
            return logits_for(tok, {c: 0.0 for c in firsts})
        if tok.end_id in reply:
            return logits_for(tok, {"z": 0.0})
        first = tok.decode(reply[:1])
        if first != "d" and len(reply) == "abcd".index(first) + 1:
            return logits_for(tok, {"<|end|>": 0.0})
        return logits_for(tok, {first: 0.0})

    model = Planted(tok, script)
    return model


MESSAGES = [("user", "reverse ana")]


def sampled(model, tok, group_size, max_new_tokens, seed, temperature=1.0):
    got = sample_group(model, tok, MESSAGES, group_size, max_new_tokens=max_new_tokens,
                       temperature=temperature, generator=torch.Generator().manual_seed(seed))
    expect(type(got) is list and len(got) == group_size and all(type(r) is str for r in got),
           f"sample_group(..., group_size={group_size}) returned {got!r}; expected a list of "
           f"{group_size} str", hint="decode each row's reply to text")
    return got


def test_each_reply_stops_at_its_own_end():
    tok = ChatTokenizer()
    model = staircase(tok)
    allowed = {"a", "bb", "ccc", "d" * 6}
    replies = [r for seed in range(3) for r in sampled(model, tok, 16, 6, seed)]
    wrong = sorted(set(replies) - allowed)
    expect(not wrong, f"a planted model whose replies can only be {sorted(allowed)} gave "
           f"{wrong}", hint="keep each row's tokens up to its own first <|end|> (not included);"
                            " a row that never ends gets max_new_tokens tokens; the others keep "
                            "sampling until every row is done, and what a row samples after "
                            "its end is dropped")
    expect({"a", "d" * 6} <= set(replies), f"48 sampled replies were {sorted(set(replies))}: "
           "one short and one long reply should both appear",
           hint="sample every row from its own distribution: torch.multinomial over the (G, "
                "vocab) probabilities, not one draw copied to every row")


def test_the_group_is_one_batch_with_a_kv_cache():
    tok = ChatTokenizer()
    model = staircase(tok, firsts="abc")  # every reply ends within 3 tokens
    model.train()
    sampled(model, tok, 8, 20, seed=0)
    shapes = [shape for shape, _, _ in model.calls]
    expect(len(model.calls) > 0 and all(shape[0] == 8 for shape in shapes),
           f"the model was called with inputs of shapes {shapes[:6]}...; expected a batch of 8 "
           "rows every time", hint="sample the G replies as ONE batch: the prompt repeated G "
                                   "times, one row per reply")
    expect(all(cached and shape[1] == 1 for shape, cached, _ in model.calls[1:]),
           f"after the prompt, the model got inputs {model.calls[1:4]}... (shape, cache given, "
           "training)", hint="make one cache with new_cache(model, group_size), feed the prompt "
                             "once, then only each row's newest token with kv_cache=cache")
    expect(len(model.calls) <= 5, f"{len(model.calls)} model calls for replies of at most 3 "
           "tokens with max_new_tokens=20", hint="stop as soon as every row has produced its "
                                                 "<|end|>")
    expect(not any(training for _, _, training in model.calls) and model.training,
           "the model must sample in eval mode and be back in training mode afterwards",
           hint="was_training = model.training; model.eval(); ...; model.train(was_training)")


def test_sampling_is_repeatable_with_a_seeded_generator():
    tok = ChatTokenizer()
    model = staircase(tok)
    torch.manual_seed(1)
    first = sampled(model, tok, 12, 6, seed=7)
    torch.manual_seed(2)  # the global random state must not matter
    second = sampled(model, tok, 12, 6, seed=7)
    expect(first == second, f"the same generator seed gave {first} and then {second}",
           hint="draw with torch.multinomial(probs, 1, generator=generator) (kata 11's "
                "sample_next), never from the global random state")


def test_the_templates_other_specials_are_never_drawn():
    """A planted model that favours <|user|>, <|pad|>, ... at every step: a reply holds only
    ordinary characters, so those are never sampled and every reply is 'aaa'."""
    tok = ChatTokenizer()
    model = None

    def script(seen):
        reply = model.reply_so_far(seen)
        others = {name: 2.0 for name in tok.special if name != "<|end|>"}
        return logits_for(tok, {**others, "a": 0.0} if len(reply) < 3 else {**others,
                                                                            "<|end|>": 0.0})

    model = Planted(tok, script)
    replies = sampled(model, tok, 8, 6, seed=0)
    expect(replies == ["aaa"] * 8, f"replies {replies}; expected 'aaa' eight times",
           hint="set the logits of every special token except <|end|> to -inf before drawing: "
                "grpo_batch re-renders a reply from its text, so a token it cannot hold would "
                "be trained on as <|end|>, and its probability would never be pushed down")


def test_an_empty_group_is_a_value_error():
    tok = ChatTokenizer()
    with pytest.raises(ValueError, match="group_size"):
        sample_group(staircase(tok), tok, MESSAGES, 0)


def test_greedy_group_matches_an_uncached_generation():
    torch.manual_seed(3)
    tok = ChatTokenizer()
    model = ModernGPT(ModernConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=2,
                                   n_head=2, n_embd=32)).double()
    banned = [i for name, i in tok.special.items() if name != "<|end|>"]
    seq = prompt_for_reply(tok, MESSAGES)
    want = []
    with torch.no_grad():  # the oracle: recompute the whole sequence at every step
        for _ in range(12):
            logits = model(torch.tensor([seq]))[0][0, -1]
            logits[banned] = float("-inf")
            token = int(logits.argmax())
            if token == tok.end_id:
                break
            want.append(token)
            seq.append(token)
    got = sampled(model, tok, 4, 12, seed=0, temperature=0.0)
    expect(got == [tok.decode(want)] * 4,
           f"greedy sample_group gave {got}; generating without a cache gives "
           f"{tok.decode(want)!r} for every row", hint="temperature 0 takes the argmax; with the "
                                                      "cache feed only the newest token of each "
                                                      "row after the prompt")


# --------------------------------------------------------------------------- grpo_step


def test_grpo_step_raises_the_reward_of_a_learnable_task():
    """A one-token answer that a random tiny model says 1 time in 18: 30 steps of 16 replies
    bring the mean reward from about 0.1 to about 0.9 (12 seeds of the reference: first five
    steps 0.04-0.23, last five 0.78-0.96)."""
    tok = ChatTokenizer("abcinotu 0123")
    torch.manual_seed(0)
    policy = ModernGPT(ModernConfig(vocab_size=tok.vocab_size, block_size=24, n_layer=1,
                                    n_head=2, n_embd=16))
    reference = copy.deepcopy(policy)
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    tasks = [Task("count", "count a in banana", "3")]
    curve = []
    for _ in range(30):
        out = grpo_step(policy, reference, optimizer, tok, tasks, group_size=16,
                        max_new_tokens=1, generator=g)
        expect(type(out) is dict and type(out.get("reward")) is float
               and type(out.get("loss")) is float,
               f"grpo_step returned {out!r}; expected a dict with float 'loss' and 'reward'",
               hint="return {'loss': loss.item(), 'reward': rewards.mean().item(), ...}")
        curve.append(out["reward"])
    start, end = sum(curve[:5]) / 5, sum(curve[-5:]) / 5
    expect(end >= 0.6 and end >= start + 0.4,
           f"mean reward over 30 GRPO steps: {[round(r, 2) for r in curve]} (first five "
           f"{start:.2f}, last five {end:.2f}); expected the last five >= 0.6",
           hint="advantages from each group's own rewards, grpo_loss on the replies' tokens "
                "with old_logp from the policy before the step, then optimizer.step()")


def test_grpo_step_leaves_the_reference_alone():
    tok = ChatTokenizer("abcinotu 0123")
    config = ModernConfig(vocab_size=tok.vocab_size, block_size=24, n_layer=1, n_head=2,
                          n_embd=16)
    torch.manual_seed(1)
    policy = ModernGPT(config)
    torch.manual_seed(2)
    reference = ModernGPT(config)  # another model, so that the KL term has a gradient
    frozen = copy.deepcopy(reference.state_dict())
    before = copy.deepcopy(policy.state_dict())
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(1)
    tasks = [Task("count", "count a in banana", "3"), Task("count", "count b in bob", "2")]
    for _ in range(3):
        out = grpo_step(policy, reference, optimizer, tok, tasks, group_size=8,
                        max_new_tokens=1, kl_beta=0.1, generator=g)
        expect(math.isfinite(out["loss"]), f"grpo_step with kl_beta=0.1 gave loss {out['loss']}")
    expect(all(torch.equal(v, frozen[k]) for k, v in reference.state_dict().items()),
           "the reference model's weights changed during grpo_step",
           hint="the reference only scores the replies, under torch.no_grad(); the optimizer "
                "holds the policy's parameters alone")
    expect(all(p.grad is None for p in reference.parameters()),
           "the reference model received gradients", hint="compute ref_logp under "
                                                          "torch.no_grad()")
    expect(any(not torch.equal(v, before[k]) for k, v in policy.state_dict().items()),
           "three grpo_steps did not change the policy", hint="loss.backward(); optimizer.step()")


@pytest.mark.parametrize("answer", ["a", "q"])
def test_a_group_with_equal_rewards_changes_nothing(answer):
    """A planted policy that always replies 'a': with answer 'a' every reward is 1, with 'q'
    every reward is 0. Either way the advantages are 0: loss 0, no NaN, no update."""
    tok = ChatTokenizer()
    model = None

    def script(seen):
        return logits_for(tok, {"a": 0.0} if not model.reply_so_far(seen) else {"<|end|>": 0.0})

    model = Planted(tok, script)
    before = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    out = grpo_step(model, copy.deepcopy(model), optimizer, tok,
                    [Task("reverse", "reverse ana", answer)], group_size=4, max_new_tokens=4,
                    generator=torch.Generator().manual_seed(0))
    want = 1.0 if answer == "a" else 0.0
    expect(type(out) is dict and out.get("reward") == want,
           f"grpo_step on replies 'a' x 4 for answer {answer!r} returned {out!r}; expected "
           f"'reward' {want}", hint="reward = the mean of rewards(task, replies)")
    expect(type(out["loss"]) is float and out["loss"] == 0.0,
           f"loss {out['loss']!r} for a group whose rewards are all {want}; expected 0.0",
           hint="equal rewards give advantages of exactly 0 (and never NaN: std + eps)")
    expect(all(torch.equal(v, before[k]) for k, v in model.state_dict().items()),
           "the weights changed (or became NaN) after a step with zero advantages",
           hint="a group with equal rewards carries no signal; std + eps keeps 0 / 0 away")
