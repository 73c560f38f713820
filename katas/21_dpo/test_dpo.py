"""Specs for kata 21. Oracles: log-probabilities worked out here in float64 from the model's
logits (log-sum-exp and the label lookup by hand, summed over the labelled positions); the DPO
loss, its gradient and -log sigmoid written out with `math` per pair (a stable closed form);
kata 20's render_chat and collate for the batches; hand-counted reward accuracies and margins;
"planted" models whose replies are known because their weights are set by hand; and one SGD
step recomputed from the oracle's own gradient."""

import copy
import math
from functools import cache

import pytest
import torch
import torch.nn as nn
from dpo import (
    dpo_batch,
    dpo_loss,
    dpo_step,
    preference_pairs,
    reward_accuracy,
    reward_margin,
    sequence_logprobs,
    token_logprobs,
)
from hypothesis import given
from hypothesis import strategies as st
from modern import ModernConfig, ModernGPT
from sft import IGNORE_INDEX, ChatTokenizer, collate, render_chat
from tasks import Task, is_correct

from harness.checks import expect, expect_close

VOCAB = 12


@cache
def tiny_model(seed: int = 0, vocab_size: int = VOCAB) -> ModernGPT:
    """A small random ModernGPT in float64 (shared: specs that train copy it first)."""
    torch.manual_seed(seed)
    config = ModernConfig(vocab_size=vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)
    model = ModernGPT(config).double()
    with torch.no_grad():  # larger weights than the init, so that log-probs differ clearly
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.5)
    return model


def fresh_model(seed: int = 0, vocab_size: int = VOCAB) -> ModernGPT:
    return copy.deepcopy(tiny_model(seed, vocab_size))


def random_batch(batch, length, seed, keep=0.6, vocab_size=VOCAB):
    """x (B, T) ids and y (B, T) labels, a random share of them IGNORE_INDEX."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, (batch, length), generator=g)
    y = torch.randint(0, vocab_size, (batch, length), generator=g)
    y[torch.rand(batch, length, generator=g) > keep] = IGNORE_INDEX
    return x, y


def oracle_token_logprobs(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log softmax by hand in float64 (max-shifted log-sum-exp), looked up at y, 0 elsewhere."""
    z = logits.double()
    top = z.max(dim=-1, keepdim=True).values
    logp = z - (top + (z - top).exp().sum(dim=-1, keepdim=True).log())
    out = torch.zeros(y.shape, dtype=torch.float64)
    for b in range(y.size(0)):
        for t in range(y.size(1)):
            if y[b, t] != IGNORE_INDEX:
                out[b, t] = logp[b, t, y[b, t]]
    return out


def logits_of(model, x):
    with torch.no_grad():
        return model(x)[0]


def neg_logsigmoid(z: float) -> float:
    """-log sigmoid(z) = log(1 + exp(-z)), written so that neither branch overflows."""
    return math.log1p(math.exp(-z)) if z >= 0 else -z + math.log1p(math.exp(z))


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def as_tensor(got, what, shape, hint=""):
    """The learner's result must be a real tensor of this shape before values are compared."""
    described = (f"a tensor of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor)
                 else type(got).__name__)
    expect(type(got) is torch.Tensor and tuple(got.shape) == tuple(shape),
           f"{what}: expected a torch.Tensor of shape {tuple(shape)}, got {described}",
           hint=hint or "stay in torch and keep one number per pair (or per position)")
    return got


def diagnose(got, hint, candidates):
    """The hint of the first wrong formula that got matches, else the general hint."""
    for candidate, fix in candidates:
        if got.shape == candidate.shape and torch.allclose(got.double(), candidate.double(),
                                                           rtol=1e-9, atol=1e-12):
            return fix
    return hint


# --- token_logprobs and sequence_logprobs ---


@given(batch=st.integers(1, 3), length=st.integers(1, 9), seed=st.integers(0, 10_000),
       keep=st.sampled_from([0.3, 0.7, 1.0]))
def test_token_logprobs_are_log_softmax_at_the_labels(batch, length, seed, keep):
    model = tiny_model()
    x, y = random_batch(batch, length, seed, keep)
    got = as_tensor(token_logprobs(model, x, y), f"token_logprobs on x, y of shape "
                    f"{(batch, length)}", (batch, length),
                    hint="one log-probability per label position: (B, T)")
    logits = logits_of(model, x)
    want = oracle_token_logprobs(logits, y)
    kept = y != IGNORE_INDEX
    safe = y.masked_fill(~kept, 0)
    on_x = oracle_token_logprobs(logits, x)
    raw = logits.double().gather(-1, safe.unsqueeze(-1)).squeeze(-1) * kept
    hint = diagnose(got.detach(), "log_softmax(logits, -1), gathered at y, 0.0 where y == -100", [
        (want.exp() * kept, "those are probabilities: take log_softmax, not softmax"),
        (-want, "those are negative log-likelihoods (cross-entropy): a log-probability is <= 0"),
        (raw, "those are raw logits: normalize them with log_softmax first"),
        (on_x, "you looked up x: the label of position t is y[t], the NEXT token"),
    ])
    expect(got.is_floating_point(), f"token_logprobs returned a {got.dtype} tensor",
           hint="log-probabilities are floats")
    expect_close(got.detach(), want, f"token_logprobs on a random batch of shape "
                 f"{(batch, length)} ({int(kept.sum())} labelled positions), float64",
                 hint=hint, rel=1e-9, abs=1e-12)


def test_token_logprobs_are_exactly_zero_where_the_label_is_ignored():
    model = tiny_model()
    x, y = random_batch(3, 8, seed=1, keep=0.5)
    y[1] = IGNORE_INDEX  # a row with no reply at all
    got = as_tensor(token_logprobs(model, x, y), "token_logprobs", (3, 8))
    ignored = y == IGNORE_INDEX
    values = got.detach()[ignored]
    expect(bool((values == 0).all()), f"token_logprobs at the {int(ignored.sum())} positions "
           f"where y == -100: expected 0.0 everywhere, got {values.tolist()[:8]}",
           hint="gather cannot look up -100: look up any valid id there (y.clamp(min=0) or "
                "masked_fill), then set those positions to 0.0 (masked_fill or * mask)")


def test_sequence_logprobs_sum_the_reply_tokens():
    model = tiny_model()
    x, y = random_batch(4, 9, seed=2, keep=0.6)
    got = as_tensor(sequence_logprobs(model, x, y), "sequence_logprobs on x, y of shape (4, 9)",
                    (4,), hint="one number per sequence: sum token_logprobs over time (dim=-1)")
    logits = logits_of(model, x)
    per_token = oracle_token_logprobs(logits, y)
    want = per_token.sum(dim=1)
    kept = (y != IGNORE_INDEX).sum(dim=1)
    everything = torch.log_softmax(logits.double(), -1).gather(
        -1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1).sum(dim=1)
    hint = diagnose(got.detach(), "log pi(reply | prompt) = the SUM of token_logprobs over the "
                                  "positions whose label is not -100", [
        (want / kept.clamp(min=1), "that is the mean per token: DPO's log pi(y|x) is the sum"),
        (everything, "you summed over every position, the prompt and padding too: only the "
                     "labelled (assistant) positions count"),
        (want.exp(), "that is a probability: return the sum of log-probabilities"),
    ])
    expect_close(got.detach(), want, "sequence_logprobs on 4 rows with "
                 f"{kept.tolist()} labelled positions, float64", hint=hint, rel=1e-9, abs=1e-12)


class ChangedAt(nn.Module):
    """Wraps a model and adds noise to its logits at the chosen positions only."""

    def __init__(self, model, where):
        super().__init__()
        self.model, self.where = model, where

    def forward(self, idx, targets=None, kv_cache=None):
        logits, _ = self.model(idx)
        noise = torch.randn(logits.shape, generator=torch.Generator().manual_seed(9),
                            dtype=logits.dtype) * 5.0
        return logits + noise * self.where.unsqueeze(-1), None


def test_what_the_model_says_at_prompt_and_padding_positions_changes_nothing():
    model = tiny_model()
    x, y = random_batch(3, 10, seed=3, keep=0.5)
    y[2, 6:] = IGNORE_INDEX  # padding at the end of row 2
    base = as_tensor(sequence_logprobs(model, x, y), "sequence_logprobs", (3,)).detach()
    changed = sequence_logprobs(ChangedAt(model, y == IGNORE_INDEX), x, y).detach()
    expect_close(changed, base, "sequence_logprobs after the model's logits were changed at "
                 "every position whose label is -100 (prompt, markers, padding)",
                 hint="those positions have no label: they must contribute nothing. Mask "
                      "with y != -100 (not with the pad id, not with x)", rel=1e-12, abs=1e-12)
    moved = sequence_logprobs(ChangedAt(model, y != IGNORE_INDEX), x, y).detach()
    expect(not torch.allclose(moved, base), "sequence_logprobs did not change when the model's "
           "logits changed at the labelled positions",
           hint="use the logits the model returns at the reply positions")


def test_a_right_padded_row_scores_as_it_does_alone():
    model = tiny_model()
    x, y = random_batch(2, 10, seed=4, keep=1.0)
    y[:, :3] = IGNORE_INDEX  # a 3-token prompt
    x[1, 6:], y[1, 6:] = 0, IGNORE_INDEX  # row 1 is 6 tokens long, then padding
    together = as_tensor(sequence_logprobs(model, x, y), "sequence_logprobs", (2,)).detach()
    alone = sequence_logprobs(model, x[1:, :6], y[1:, :6]).detach()
    expect_close(together[1], alone[0], "sequence_logprobs of a 6-token row padded to 10, "
                 "against the same row alone", hint="padding has label -100: leave it out of the "
                 "sum", rel=1e-12, abs=1e-12)


def test_token_logprobs_gradient_reaches_the_model():
    model = fresh_model()
    x, y = random_batch(2, 6, seed=5, keep=0.8)
    sequence_logprobs(model, x, y).sum().backward()
    grads = [p.grad for p in model.parameters()]
    expect(all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads),
           "no gradient reached the model's parameters through sequence_logprobs",
           hint="the policy's log-probs need their graph: no torch.no_grad(), .detach() or "
                ".item() inside token_logprobs")


def test_token_logprobs_rejects_mismatched_shapes():
    x, y = random_batch(2, 6, seed=6)
    with pytest.raises(ValueError, match="shape"):
        token_logprobs(tiny_model(), x, y[:, :5])


# --- the loss ---

logprob = st.floats(-60.0, 0.0, allow_nan=False)


@given(data=st.data(), batch=st.integers(1, 6), beta=st.floats(0.01, 2.0))
def test_dpo_loss_matches_the_formula_in_float64(data, batch, beta):
    pc, pr, rc, rr = (data.draw(st.lists(logprob, min_size=batch, max_size=batch))
                      for _ in range(4))
    got = dpo_loss(*(torch.tensor(v, dtype=torch.float64) for v in (pc, pr, rc, rr)), beta=beta)
    expect(isinstance(got, tuple) and len(got) == 3, f"dpo_loss returned {type(got).__name__}",
           hint="return (loss, chosen_rewards, rejected_rewards)")
    loss, chosen, rejected = got
    as_tensor(loss, "the loss", (), hint="the loss is one number: a 0-dim tensor (.mean())")
    margins = [beta * ((a - c) - (b - d)) for a, b, c, d in zip(pc, pr, rc, rr)]
    want = sum(neg_logsigmoid(z) for z in margins) / batch
    candidates = [
        (sum(neg_logsigmoid(beta * (a - b)) for a, b in zip(pc, pr)) / batch,
         "you left out the reference terms: the margin is (pc - rc) - (pr - rr)"),
        (sum(neg_logsigmoid(-z) for z in margins) / batch,
         "chosen and rejected are swapped: the loss falls as the CHOSEN reply gains"),
        (sum(beta * neg_logsigmoid(z / beta) for z in margins) / batch,
         "beta multiplies the margin inside the log-sigmoid, not the loss"),
        (sum(neg_logsigmoid(z) for z in margins),
         "that is the sum over pairs: the loss is the mean"),
        (sum(neg_logsigmoid(z / beta) for z in margins) / batch,
         "beta is missing: the margin is beta * ((pc - rc) - (pr - rr))"),
    ]
    hint = "loss = mean of -logsigmoid(beta * ((pc - rc) - (pr - rr)))"
    for candidate, fix in candidates:
        if math.isclose(loss.item(), candidate, rel_tol=1e-9, abs_tol=1e-12):
            hint = fix
            break
    expect_close(loss.item(), want, f"dpo_loss over {batch} pairs with beta={beta:.4g}",
                 hint=hint, rel=1e-9, abs=1e-12)
    for name, got_r, pol, ref in (("chosen", chosen, pc, rc), ("rejected", rejected, pr, rr)):
        as_tensor(got_r, f"the {name} rewards", (batch,))
        expect_close(got_r, [beta * (p - r) for p, r in zip(pol, ref)],
                     f"the {name} rewards beta * (policy - reference)", rel=1e-9, abs=1e-12,
                     hint="reward = beta * (log pi - log pi_ref), one per pair")


@given(data=st.data(), batch=st.integers(1, 5), beta=st.floats(0.05, 1.0))
def test_dpo_loss_gradient_raises_chosen_and_lowers_rejected(data, batch, beta):
    values = [data.draw(st.lists(logprob, min_size=batch, max_size=batch)) for _ in range(4)]
    pc, pr, rc, rr = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values)
    loss, _, _ = dpo_loss(pc, pr, rc, rr, beta=beta)
    loss.backward()
    # d/dz -log sigmoid(z) = -sigmoid(-z), and z = beta * ((pc - rc) - (pr - rr)), / batch.
    slope = [beta * sigmoid(-beta * ((a - c) - (b - d))) / batch for a, b, c, d in zip(*values)]
    expect(pc.grad is not None and pr.grad is not None, "no gradient reached the policy's "
           "log-probs", hint="compute the loss in torch from the tensors you are given")
    expect_close(pc.grad, [-s for s in slope], "dL/d policy_chosen (negative: descending the "
                 "loss RAISES the chosen log-prob)", rel=1e-9, abs=1e-15,
                 hint="-logsigmoid(beta * ((pc - rc) - (pr - rr))).mean(); a positive "
                      "gradient here means chosen and rejected are swapped")
    expect_close(pr.grad, slope, "dL/d policy_rejected (positive: descending the loss LOWERS "
                 "the rejected log-prob)", rel=1e-9, abs=1e-15,
                 hint="the rejected log-prob enters the margin with a minus sign")


def test_dpo_loss_is_stable_for_huge_margins():
    beta = 1.0
    pc = torch.tensor([1e4, -1e4, 0.0], dtype=torch.float64, requires_grad=True)
    zeros = torch.zeros(3, dtype=torch.float64)
    loss, _, _ = dpo_loss(pc, zeros, zeros, zeros, beta=beta)
    hint = ("use torch.nn.functional.logsigmoid: log(sigmoid(z)) is log(0) = -inf when "
            "sigmoid(-1e4) underflows, and log(1 + exp(-z)) overflows")
    expect(bool(torch.isfinite(loss)), f"dpo_loss with margins +1e4, -1e4 and 0 gave {loss.item()}",
           hint=hint)
    # -log sigmoid(1e4) = 0 (to 1e-4000), -log sigmoid(-1e4) = 1e4, -log sigmoid(0) = log 2.
    expect_close(loss.item(), (0.0 + 1e4 + math.log(2)) / 3,
                 "dpo_loss for margins +1e4, -1e4, 0 (beta 1)", hint=hint, rel=1e-12)
    loss.backward()
    expect(pc.grad is not None and bool(torch.isfinite(pc.grad).all()),
           f"the gradient at huge margins: {pc.grad}", hint=hint)
    expect_close(pc.grad, [0.0, -1 / 3, -0.5 / 3], "dL/d policy_chosen at margins +1e4, -1e4, 0",
                 hint=hint, rel=1e-12, abs=1e-300)


def test_loss_is_log_2_when_the_policy_equals_the_reference():
    g = torch.Generator().manual_seed(7)
    chosen, rejected = -30 * torch.rand(5, generator=g), -30 * torch.rand(5, generator=g)
    loss, rc, rr = dpo_loss(chosen, rejected, chosen.clone(), rejected.clone(), beta=0.1)
    expect_close(loss.item(), math.log(2), "dpo_loss when policy and reference log-probs are "
                 "equal (every margin 0: -log sigmoid(0) = log 2 = 0.693147)", rel=1e-6,
                 hint="the margin is (pc - rc) - (pr - rr): it must vanish when the policy is "
                      "the reference, whatever the log-probs are")
    expect_close(rc, [0.0] * 5, "the chosen rewards when policy = reference", abs=1e-7)
    expect_close(rr, [0.0] * 5, "the rejected rewards when policy = reference", abs=1e-7)


def test_rewards_are_detached():
    pc, pr, rc, rr = (torch.tensor([-3.0, -5.0], requires_grad=True) for _ in range(4))
    _, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.5)
    for name, r in (("chosen", chosen), ("rejected", rejected)):
        expect(type(r) is torch.Tensor and not r.requires_grad,
               f"the {name} rewards still require grad", hint="they are for reporting only: "
               "return beta * (logp - ref_logp) with .detach()")


@pytest.mark.parametrize("beta", [0.0, -0.1])
def test_dpo_loss_rejects_a_beta_that_is_not_positive(beta):
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(x, x, x, x, beta=beta)


def test_dpo_loss_rejects_mismatched_batches():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        dpo_loss(x, x, x, torch.zeros(2))


# --- reward accuracy and margin ---


def test_reward_accuracy_and_margin_by_hand():
    chosen = torch.tensor([1.0, 2.0, 3.0, 0.5])
    rejected = torch.tensor([0.0, 2.0, 4.0, -1.0])
    # wins: 1 > 0 yes, 2 > 2 no (a tie), 3 > 4 no, 0.5 > -1 yes -> 2 of 4
    acc = reward_accuracy(chosen, rejected)
    expect(type(acc) is float, f"reward_accuracy returned {type(acc).__name__}",
           hint="return a plain float: .item() of the mean")
    hint = "the fraction of pairs with chosen STRICTLY greater than rejected"
    if acc == 0.75:
        hint = "a tie is not a win: use >, not >="
    expect_close(acc, 0.5, "reward_accuracy([1, 2, 3, 0.5], [0, 2, 4, -1])", hint=hint)
    margin = reward_margin(chosen, rejected)
    expect(type(margin) is float, f"reward_margin returned {type(margin).__name__}",
           hint="return a plain float: .item() of the mean")
    # differences 1, 0, -1, 1.5 -> mean 0.375
    expect_close(margin, 0.375, "reward_margin([1, 2, 3, 0.5], [0, 2, 4, -1])",
                 hint="the mean of chosen - rejected (not of the absolute values, not the sum)")
    expect_close(reward_accuracy(rejected, chosen), 0.25, "reward_accuracy with the two swapped",
                 hint=hint)


# --- preference pairs from a planted model ---

TOK = None


def tokenizer() -> ChatTokenizer:
    global TOK
    if TOK is None:
        TOK = ChatTokenizer()
    return TOK


def planted_model(tok, replies: dict[str, float]) -> ModernGPT:
    """A ModernGPT whose next token depends only on the current one: its blocks are zeroed (the
    residual stream is the token's one-hot embedding) and its output head untied. After the
    <|assistant|> marker its logits are `replies` (text -> logit of that text's first
    character); after each character of a reply comes the reply's next one, then <|end|>.
    Every other logit is 0, far below the planted ones."""
    vocab = tok.vocab_size
    config = ModernConfig(vocab_size=vocab, block_size=64, n_layer=1, n_head=2, n_embd=vocab + 2)
    torch.manual_seed(0)
    model = ModernGPT(config).double()
    scale = 1 / math.sqrt(1 / config.n_embd + 1e-5)  # RMSNorm of a one-hot vector
    head = torch.zeros(vocab, config.n_embd, dtype=torch.float64)
    for text, logit in replies.items():
        ids = [tok.assistant_id, *tok.encode(text), tok.end_id]
        head[ids[1], ids[0]] = logit / scale
        for here, after in zip(ids[1:], ids[2:]):
            head[after, here] = 40.0 / scale
    with torch.no_grad():
        for p in model.transformer.h.parameters():
            p.zero_()
        model.transformer.wte.weight.copy_(torch.eye(vocab, config.n_embd, dtype=torch.float64))
    model.lm_head.weight = nn.Parameter(head)
    return model


def check_pairs(pairs, what):
    expect(type(pairs) is list and all(isinstance(p, tuple) and len(p) == 3 for p in pairs),
           f"{what}: expected a list of (messages, chosen, rejected) tuples, got "
           f"{type(pairs).__name__} {str(pairs)[:120]}", hint="append one tuple per pair")
    for messages, chosen, rejected in pairs:
        expect(type(messages) is list and type(chosen) is str and type(rejected) is str,
               f"{what}: expected messages (a list), chosen and rejected (str), got "
               f"{messages!r}, {chosen!r}, {rejected!r}", hint="the prompt is a list of "
               "(role, text) messages; the replies are texts")
    return pairs


def test_preference_pairs_reject_what_the_model_really_says():
    tok = tokenizer()
    model = planted_model(tok, {"2": 40.0})  # replies "2" to everything
    tasks = [Task("count", "count a in anna", "2"), Task("count", "count b in bob", "1"),
             Task("reverse", "reverse ada", "ada")]
    pairs = check_pairs(preference_pairs(model, tok, tasks, samples=3,
                                         generator=torch.Generator().manual_seed(0)),
                        "preference_pairs on 3 tasks for a model that always replies '2'")
    expect(len(pairs) == 2, f"{len(pairs)} pairs for 3 tasks, one of which (answer '2') the "
           "model always gets right: expected 2", hint="a task the model never gets wrong in "
           "`samples` tries gives no pair: there is no wrong reply to reject")
    for (messages, chosen, rejected), task in zip(pairs, tasks[1:]):
        expect(messages == [("user", task.prompt)], f"the prompt of the pair for "
               f"{task.prompt!r}: expected [('user', {task.prompt!r})], got {messages!r}",
               hint="the conversation the model replied to: one user message, the task's prompt")
        expect(chosen == task.answer, f"chosen for {task.prompt!r}: expected the task's answer "
               f"{task.answer!r}, got {chosen!r}", hint="chosen is task.answer")
        expect(rejected == "2", f"rejected for {task.prompt!r}: expected '2', what the model "
               f"replies, got {rejected!r}", hint="rejected is a wrong reply the model sampled "
               "itself (kata 20's generate_reply), not one made up")


def test_preference_pairs_sample_with_the_generator_and_temperature():
    tok = tokenizer()
    # After <|assistant|>: "2" with probability e/(1+e) = 0.73, "3" with 0.27 (temperature 1).
    model = planted_model(tok, {"2": 31.0, "3": 30.0})
    tasks = [Task("count", f"count a in {'a' * 2}{'b' * k}", "2") for k in range(40)]

    def pairs_for(seed, samples=4, temperature=1.0, global_seed=0):
        torch.manual_seed(global_seed)  # must not matter: the generator decides
        return check_pairs(preference_pairs(model, tok, tasks, samples=samples,
                                            temperature=temperature,
                                            generator=torch.Generator().manual_seed(seed)),
                           f"preference_pairs(samples={samples}, temperature={temperature})")

    first = pairs_for(0)
    expect(all(rejected == "3" and chosen == "2" for _, chosen, rejected in first),
           f"every pair must reject '3', the model's only wrong reply; got rejected "
           f"{sorted({r for _, _, r in first})}", hint="keep a sampled reply only if "
           "is_correct(task, reply) is False")
    expect(all(not is_correct(t, r) for t, (_, _, r) in zip(tasks, first)), "a rejected reply is "
           "correct", hint="use tasks.is_correct")
    # P(at least one "3" in 4 samples) = 1 - 0.731^4 = 0.71: about 29 of 40 tasks.
    expect(15 <= len(first) <= 38, f"{len(first)} pairs from 40 tasks; expected about 29",
           hint="sample up to `samples` replies at the given temperature until one is wrong")
    again = pairs_for(0, global_seed=1)
    expect(again == first, "preference_pairs with the same seeded generator gave different pairs "
           "(after torch.manual_seed changed)", hint="pass generator= on to generate_reply")
    one = pairs_for(0, samples=1)
    expect(len(one) < len(first), f"samples=1 gave {len(one)} pairs, samples=4 {len(first)}: "
           "more tries must find more wrong replies", hint="sample up to `samples` replies")
    greedy = pairs_for(0, temperature=0.0)
    expect(greedy == [], f"at temperature 0 the model always replies '2' (greedy), which is "
           f"right: expected no pairs, got {len(greedy)}", hint="pass temperature= on to "
           "generate_reply")


def test_preference_pairs_reject_a_bad_sample_count():
    tok = tokenizer()
    with pytest.raises(ValueError, match="samples"):
        preference_pairs(planted_model(tok, {"2": 40.0}), tok, [Task("count", "count a in a",
                                                                     "1")], samples=0)


# --- the batch ---

PAIRS = [([("user", "reverse ada")], "ada", "aad"),
         ([("user", "count l in lilly")], "3", "12"),
         ([("system", "be brief"), ("user", "reverse bo")], "ob", "")]


def test_dpo_batch_is_kata_20s_collate_of_each_reply():
    tok = tokenizer()
    got = dpo_batch(tok, PAIRS)
    expect(isinstance(got, tuple) and len(got) == 4, f"dpo_batch returned {type(got).__name__}",
           hint="return (x_chosen, y_chosen, x_rejected, y_rejected)")
    for side, index, pick in (("chosen", 0, 1), ("rejected", 2, 2)):
        examples = [render_chat(tok, [*pair[0], ("assistant", pair[pick])]) for pair in PAIRS]
        want_x, want_y = collate(tok, examples)
        for name, got_t, want_t in (("x", got[index], want_x), ("y", got[index + 1], want_y)):
            as_tensor(got_t, f"{name}_{side}", tuple(want_t.shape),
                      hint="collate(tok, [render_chat(tok, messages + [('assistant', reply)])])")
            hint = "render each prompt with its reply as the assistant message, then collate"
            other = got[2 - index + (name == "y")]
            if other.shape == want_t.shape and torch.equal(other, want_t):
                hint = "chosen and rejected are swapped"
            expect(torch.equal(got_t, want_t), f"{name}_{side} for 3 pairs:\n  expected "
                   f"{want_t.tolist()}\n  got      {got_t.tolist()}", hint=hint)


def test_dpo_batch_labels_only_the_replies():
    tok = tokenizer()
    _, y_chosen, _, y_rejected = dpo_batch(tok, PAIRS[:1])
    labelled = [t for t in y_chosen[0].tolist() if t != IGNORE_INDEX]
    expect(labelled == [*tok.encode("ada"), tok.end_id], f"the labels of the chosen reply 'ada': "
           f"{labelled}", hint="only the assistant's text and its <|end|> carry labels")
    labelled = [t for t in y_rejected[0].tolist() if t != IGNORE_INDEX]
    expect(labelled == [*tok.encode("aad"), tok.end_id], f"the labels of the rejected reply "
           f"'aad': {labelled}", hint="only the assistant's text and its <|end|> carry labels")


def test_dpo_batch_rejects_no_pairs():
    with pytest.raises(ValueError, match="pairs"):
        dpo_batch(tokenizer(), [])


# --- the step ---


def step_setup(seed=0):
    """A policy, its frozen reference (a plain copy: its parameters still require grad), and a
    batch of 3 pairs of random prompts and replies."""
    tok = tokenizer()
    reference = fresh_model(seed, tok.vocab_size)
    policy = copy.deepcopy(reference)
    batch = dpo_batch(tok, PAIRS)
    return policy, reference, batch


def oracle_logps(model, x, y):
    return oracle_token_logprobs(model(x)[0], y).sum(dim=1)


def oracle_loss(policy, reference, batch, beta):
    """The DPO loss with autograd through the policy only, from the oracle's log-probs."""
    xc, yc, xr, yr = batch
    with torch.no_grad():
        rc, rr = oracle_logps(reference, xc, yc), oracle_logps(reference, xr, yr)
    z = beta * ((oracle_logps(policy, xc, yc) - rc) - (oracle_logps(policy, xr, yr) - rr))
    return torch.nn.functional.softplus(-z).mean(), (beta * (oracle_logps(policy, xc, yc) - rc),
                                                     beta * (oracle_logps(policy, xr, yr) - rr))


def nudge(model, seed):
    """Move the weights a little, so that the policy is no longer the reference."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05)


def test_dpo_step_leaves_the_reference_alone():
    policy, reference, batch = step_setup()
    nudge(policy, 1)
    before = copy.deepcopy(reference.state_dict())
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
    for _ in range(2):
        dpo_step(policy, reference, optimizer, batch, beta=0.5)
    with_grad = [n for n, p in reference.named_parameters() if p.grad is not None]
    expect(not with_grad, f"after dpo_step the reference has gradients on {with_grad[:4]}",
           hint="compute the reference's log-probs under torch.no_grad(): it is frozen")
    changed = [n for n, t in reference.state_dict().items() if not torch.equal(t, before[n])]
    expect(not changed, f"dpo_step changed the reference's {changed[:4]}",
           hint="only the policy is trained: the reference is the SFT model, kept as it was")


def test_dpo_step_returns_the_loss_and_reward_statistics():
    policy, reference, batch = step_setup()
    nudge(policy, 2)
    beta = 0.5
    want_loss, (chosen, rejected) = oracle_loss(policy, reference, batch, beta)
    got = dpo_step(policy, reference, torch.optim.SGD(policy.parameters(), lr=0.1), batch,
                   beta=beta)
    expect(isinstance(got, dict) and {"loss", "reward_accuracy", "reward_margin"} <= set(got),
           f"dpo_step returned {got!r}", hint='return {"loss": ..., "reward_accuracy": ..., '
           '"reward_margin": ...}')
    for key in ("loss", "reward_accuracy", "reward_margin"):
        expect(type(got[key]) is float, f"dpo_step()[{key!r}] is {type(got[key]).__name__}",
               hint="plain floats: .item() of the loss; reward_accuracy/margin return floats")
    expect_close(got["loss"], want_loss.item(), "dpo_step's loss (before the step), beta 0.5",
                 rel=1e-9, hint="the loss of dpo_loss on sequence_logprobs of the policy and "
                                "the reference, for both replies")
    wins = (chosen > rejected).double().mean().item()
    expect_close(got["reward_accuracy"], wins, "dpo_step's reward_accuracy",
                 hint="reward_accuracy of the two rewards dpo_loss returns")
    expect_close(got["reward_margin"], (chosen - rejected).mean().item(), "dpo_step's "
                 "reward_margin", rel=1e-9, hint="reward_margin of the two rewards")


def test_first_step_from_the_reference_has_loss_log_2():
    policy, reference, batch = step_setup()
    got = dpo_step(policy, reference, torch.optim.SGD(policy.parameters(), lr=0.1), batch)
    expect_close(got["loss"], math.log(2), "the loss of the first dpo_step, when the policy is "
                 "still a copy of the reference", rel=1e-9, hint="every margin is 0 and "
                 "-log sigmoid(0) = log 2: are the reference terms in the loss?")
    expect(got["reward_accuracy"] == 0.0 and got["reward_margin"] == 0.0,
           f"reward accuracy {got['reward_accuracy']} and margin {got['reward_margin']} when the "
           "policy equals the reference: expected 0.0 and 0.0 (all rewards are 0; ties do not win)",
           hint="rewards are beta * (policy - reference) log-probs")


@pytest.mark.parametrize("grad_clip", [None, 1e-3])
def test_dpo_step_is_one_step_down_the_dpo_gradient(grad_clip):
    policy, reference, batch = step_setup()
    nudge(policy, 3)
    beta, lr = 0.5, 0.1
    shadow = copy.deepcopy(policy)
    loss, _ = oracle_loss(shadow, reference, batch, beta)
    loss.backward()
    grads = [p.grad for p in shadow.parameters()]
    norm = torch.sqrt(sum((g * g).sum() for g in grads)).item()
    factor = 1.0 if grad_clip is None else min(1.0, grad_clip / (norm + 1e-6))
    want = [p.detach() - lr * factor * g for p, g in zip(shadow.parameters(), grads)]
    for p in policy.parameters():  # stale gradients from an earlier step must not count
        p.grad = torch.ones_like(p)
    dpo_step(policy, reference, torch.optim.SGD(policy.parameters(), lr=lr), batch, beta=beta,
             grad_clip=grad_clip)
    got = torch.cat([p.detach().flatten() for p in policy.parameters()])
    hint = ("zero the gradients, backward the mean DPO loss, clip the policy's gradient norm to "
            "grad_clip (clip_grad_norm_) unless it is None, then optimizer.step()")
    expect_close(got, torch.cat([w.flatten() for w in want]), f"the policy's weights after one "
                 f"SGD step (lr {lr}, grad_clip {grad_clip}, gradient norm {norm:.3g})",
                 hint=hint, rel=1e-7, abs=1e-10)


def test_a_few_steps_raise_chosen_and_lower_rejected():
    policy, reference, batch = step_setup(seed=4)
    xc, yc, xr, yr = batch
    with torch.no_grad():
        start_c, start_r = oracle_logps(policy, xc, yc), oracle_logps(policy, xr, yr)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(5):
        dpo_step(policy, reference, optimizer, batch, beta=0.5)
    with torch.no_grad():
        end_c, end_r = oracle_logps(policy, xc, yc), oracle_logps(policy, xr, yr)
    rose, fell = (end_c - start_c).sum().item(), (end_r - start_r).sum().item()
    hint = ("descend -logsigmoid(beta * ((pc - rc) - (pr - rr))): chosen is the first pair of "
            "dpo_batch, and the loss falls as the chosen log-prob rises")
    expect(rose > 0 and fell < 0, f"after 5 dpo_steps (Adam, lr 1e-2, beta 0.5) the chosen "
           f"replies' log-probs changed by {rose:+.3f} in total and the rejected ones' by "
           f"{fell:+.3f}: expected the chosen up and the rejected down", hint=hint)
