"""Specs for kata 04. Oracles: torch in float64 (values and autograd), hand-worked numbers, the
standard library's random.Random, and counts taken straight from the data."""

import math
import random
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from mlp import (
    MLP,
    cross_entropy,
    linear,
    make_examples,
    matrix,
    mean_loss,
    num_params,
    relu,
    sgd_step,
    softmax,
    train_step,
    zero_grad,
)
from value import Value

from harness.checks import expect, expect_close

BOS = 26  # names: a..z are ids 0..25 and BOS is 26, as kata 02's CharTokenizer gives them


def encode(name: str) -> list[int]:
    return [ord(c) - ord("a") for c in name]


def values(numbers) -> list[Value]:
    return [Value(float(n)) for n in numbers]


def tensor(numbers) -> torch.Tensor:
    return torch.tensor(numbers, dtype=torch.float64, requires_grad=True)


def grads(vs) -> list:
    """The .grad of Values, of rows of Values, or of a tensor, as nested lists."""
    if isinstance(vs, torch.Tensor):
        return vs.grad.tolist()
    return [grads(v) if isinstance(v, list) else v.grad for v in vs]


def weighted_sum(coefs: list[float], vs: list[Value]) -> Value:
    total = Value(0.0)
    for c, v in zip(coefs, vs, strict=True):
        total = total + c * v
    return total


def datas(rows) -> list:
    return [datas(r) if isinstance(r, list) else r.data for r in rows]


# --- linear ---


def test_linear_worked_example():
    # y[i] = sum_j w[i][j] * x[j] + b[i], worked by hand
    x = values([1, 2, 3])
    w = [values([1, 0, -1]), values([2, 1, 0])]  # 2 outputs x 3 inputs
    b = values([0.5, -1])
    y = linear(x, w, b)
    expect_close(y, [-1.5, 3.0], "linear([1,2,3], w=[[1,0,-1],[2,1,0]], b=[0.5,-1])",
                 hint="y[0] = 1*1 + 0*2 + -1*3 + 0.5; y[1] = 2*1 + 1*2 + 0*3 - 1")
    expect_close(linear(x, w), [-2.0, 4.0], "the same without a bias")


SHAPES = [(1, 1), (3, 5), (5, 3), (1, 4), (4, 1)]  # non-square: catches a transposed w


@pytest.mark.parametrize("bias", [True, False], ids=["with bias", "no bias"])
@pytest.mark.parametrize("n_out,n_in", SHAPES, ids=[f"{o}x{i}" for o, i in SHAPES])
def test_linear_values_and_gradients_match_torch(n_out, n_in, bias):
    gen = torch.Generator().manual_seed(10 * n_out + n_in)
    x_t = torch.randn(n_in, dtype=torch.float64, generator=gen).requires_grad_()
    w_t = torch.randn(n_out, n_in, dtype=torch.float64, generator=gen).requires_grad_()
    b_t = torch.randn(n_out, dtype=torch.float64, generator=gen).requires_grad_()
    coef = torch.randn(n_out, dtype=torch.float64, generator=gen)  # L = sum_i coef[i] * y[i]

    y_t = w_t @ x_t + (b_t if bias else 0)
    (coef * y_t).sum().backward()

    x, w, b = values(x_t.tolist()), [values(r) for r in w_t.tolist()], values(b_t.tolist())
    y = linear(x, w, b if bias else None)
    expect(len(y) == n_out, f"linear with w of shape {n_out}x{n_in} gave {len(y)} outputs, "
           f"expected {n_out}", hint="one output per ROW of w: w is (n_out x n_in)")
    expect_close(y, y_t.tolist(), f"linear outputs, w {n_out}x{n_in}", rel=1e-9,
                 hint="y[i] = sum_j w[i][j] * x[j]: row i of w against x")
    weighted_sum(coef.tolist(), y).backward()
    expect_close(grads(w), w_t.grad.tolist(), "dL/dw", rel=1e-9,
                 hint="d y[i] / d w[i][j] = x[j]: the local grads of the weights are the x data")
    expect_close(grads(x), x_t.grad.tolist(), "dL/dx", rel=1e-9,
                 hint="d y[i] / d x[j] = w[i][j]: the local grads of the inputs are the row's data")
    if bias:
        expect_close(grads(b), b_t.grad.tolist(), "dL/db", rel=1e-9,
                     hint="d y[i] / d b[i] = 1")


@pytest.mark.parametrize("bias", [True, False], ids=["with bias", "no bias"])
def test_each_linear_output_is_one_fused_node(bias):
    # Every number differs, so each child's local grad tells which child it belongs to.
    x = values([1, 2, 3, 4])
    w = [values([5, 6, 7, 8]), values([9, 10, 11, 12])]
    b = values([13, 14])
    y = linear(x, w, b if bias else None)
    for i, yi in enumerate(y):
        # d y[i] / d child: x[j] for w[i][j], w[i][j] for x[j], 1 for b[i]
        want = {id(wij): xj.data for wij, xj in zip(w[i], x)}
        want.update({id(xj): wij.data for wij, xj in zip(w[i], x)})
        if bias:
            want[id(b[i])] = 1.0
        children, local_grads = list(yi.children), list(yi.local_grads)
        got = {id(c) for c in children}
        expect(got == set(want) and len(children) == len(want),
               f"y[{i}] has {len(children)} children, {len(got & set(want))} of them from w[{i}],"
               f" x{' and b[' + str(i) + ']' if bias else ''}; expected exactly those {len(want)}",
               hint="build each output as ONE Value(total, (*w[i], *x), (*x_data, *w_data)): "
                    "a chain of * and + makes 2*n_in nodes per output and slows training down")
        expect(len(local_grads) == len(children),
               f"y[{i}] has {len(children)} children but {len(local_grads)} local grads",
               hint="one local grad per child, in the same order as the children")
        expect_close(local_grads, [want[id(c)] for c in children],
                     f"local grads of y[{i}], each paired with its own child",
                     hint="the local grad of w[i][j] is x[j].data, of x[j] is w[i][j].data, "
                          "of b[i] is 1.0, each at its child's position")


def test_weights_used_twice_accumulate_their_gradients():
    gen = torch.Generator().manual_seed(4)
    w_t = torch.randn(2, 3, dtype=torch.float64, generator=gen).requires_grad_()
    x1_t, x2_t = (torch.randn(3, dtype=torch.float64, generator=gen) for _ in range(2))
    ((w_t @ x1_t).sum() * (w_t @ x2_t).sum()).backward()

    w = [values(r) for r in w_t.tolist()]
    y1, y2 = linear(values(x1_t.tolist()), w), linear(values(x2_t.tolist()), w)
    ((y1[0] + y1[1]) * (y2[0] + y2[1])).backward()
    expect_close(grads(w), w_t.grad.tolist(), "dL/dw when the same w serves two inputs",
                 rel=1e-9, hint="every use of a weight adds to its grad: keep the += of kata 01")


def test_linear_rejects_mismatched_shapes():
    x = values([1, 2, 3])
    w_transposed = [values([1, 2]), values([3, 4]), values([5, 6])]  # 3x2: meant to be 2x3
    with pytest.raises(ValueError) as info:
        linear(x, w_transposed)
    message = str(info.value)
    expect("2" in message and "3" in message,
           f"linear(x of 3, w of 3 rows x 2) raised ValueError({message!r}), which does not "
           "give the sizes", hint="say how long a row of w is and how long x is")
    with pytest.raises(ValueError) as info:
        linear(x, [values([1, 2, 3])], values([0, 0]))  # 1 output, 2 biases
    message = str(info.value)
    expect("1" in message and "2" in message,
           f"linear with 1 row of w and 2 biases raised ValueError({message!r}), which does "
           "not give both numbers", hint="say how many rows w has and how many biases came")


# --- relu ---


def test_relu_values_and_gradients():
    x = values([-2, -0.5, 0.5, 3])
    y = relu(x)
    expect_close(y, [0, 0, 0.5, 3], "relu([-2, -0.5, 0.5, 3])")
    (y[0] + y[1] + y[2] + y[3]).backward()
    expect_close(grads(x), [0, 0, 1, 1], "d relu / dx", hint="slope 1 above 0, 0 below")


# --- softmax ---

logit_lists = st.lists(st.floats(-30, 30), min_size=1, max_size=8)


@given(logit_lists, st.data())
def test_softmax_matches_torch(logits, data):
    coef = data.draw(st.lists(st.floats(-2, 2), min_size=len(logits), max_size=len(logits)))
    z_t = tensor(logits)
    p_t = torch.softmax(z_t, dim=0)
    (p_t * torch.tensor(coef, dtype=torch.float64)).sum().backward()

    z = values(logits)
    p = softmax(z)
    expect(len(p) == len(logits), f"softmax of {len(logits)} logits gave {len(p)} numbers")
    expect_close(p, p_t.tolist(), f"softmax({logits})", rel=1e-9, abs=1e-15)
    expect_close(sum(v.data for v in p), 1.0, "sum of softmax outputs", rel=1e-12)
    weighted_sum(coef, p).backward()
    expect_close(grads(z), z_t.grad.tolist(), f"gradient through softmax({logits})",
                 rel=1e-7, abs=1e-12)


@pytest.mark.parametrize("logits", [[1000.0, 999.0, -1000.0], [-1000.0, -1001.0, -1000.0]],
                         ids=["+1000", "-1000"])
def test_softmax_is_stable_at_extreme_logits(logits):
    z_t = tensor(logits)
    p_t = torch.softmax(z_t, dim=0)
    p_t[0].backward()
    z = values(logits)
    try:
        p = softmax(z)
        p[0].backward()
    except (OverflowError, ZeroDivisionError) as err:
        pytest.fail(f"softmax({logits}) raised {type(err).__name__}: {err}\n  hint: subtract "
                    "the largest logit from every logit before exp (the result is unchanged, "
                    "and the largest exp becomes exp(0) = 1)", pytrace=False)
    expect_close(p, p_t.tolist(), f"softmax({logits})", rel=1e-9, abs=1e-15)
    expect_close(grads(z), z_t.grad.tolist(), f"d softmax({logits})[0] / dz", rel=1e-7,
                 abs=1e-15)


# --- cross-entropy ---


@given(logit_lists, st.data())
def test_cross_entropy_matches_torch(logits, data):
    target = data.draw(st.integers(0, len(logits) - 1))
    z_t = tensor(logits)
    loss_t = F.cross_entropy(z_t.unsqueeze(0), torch.tensor([target]))
    loss_t.backward()

    z = values(logits)
    loss = cross_entropy(z, target)
    expect_close(loss, loss_t.item(), f"cross_entropy({logits}, target={target})", rel=1e-9,
                 abs=1e-12, hint="-log softmax(z)[target] = logsumexp(z) - z[target]")
    loss.backward()
    expect_close(grads(z), z_t.grad.tolist(), f"d cross_entropy / dz for {logits}, "
                 f"target={target}", rel=1e-7, abs=1e-12,
                 hint="the gradient is softmax(z) minus 1 at the target")


def test_cross_entropy_worked_example():
    # Uniform logits over 4 classes: loss = ln 4, gradient = 1/4 everywhere, minus 1 at the target.
    z = values([2.0, 2.0, 2.0, 2.0])
    loss = cross_entropy(z, 1)
    expect_close(loss, math.log(4), "cross_entropy of 4 equal logits", hint="-log(1/4)")
    loss.backward()
    expect_close(grads(z), [0.25, -0.75, 0.25, 0.25], "its gradient",
                 hint="softmax(z) - onehot(target)")


def test_cross_entropy_is_stable_at_extreme_logits():
    z = values([1000.0, -1000.0, 0.0])
    try:
        loss = cross_entropy(z, 1)
        loss.backward()
    except (OverflowError, ValueError, ZeroDivisionError) as err:
        pytest.fail(f"cross_entropy([1000, -1000, 0], 1) raised {type(err).__name__}: {err}\n"
                    "  hint: use logsumexp(z) = m + log(sum exp(z - m)) with m = max(z)",
                    pytrace=False)
    # torch float64 agrees: the loss is 2000 (to 1e-12) and the gradient [1, -1, 0]
    expect_close(loss, 2000.0, "cross_entropy([1000, -1000, 0], target 1)", rel=1e-12)
    expect_close(grads(z), [1.0, -1.0, 0.0], "its gradient", abs=1e-12)


def test_cross_entropy_rejects_a_target_out_of_range():
    for target in (3, -1):
        with pytest.raises(IndexError) as info:
            cross_entropy(values([0, 1, 2]), target)
        expect(str(target) in str(info.value),
               f"cross_entropy(3 logits, target={target}) raised IndexError({str(info.value)!r})"
               f", which does not name the target", hint="say which target and how many logits")


# --- parameters and SGD ---


def test_matrix_draws_gaussians_row_by_row_from_the_given_generator():
    w = matrix(3, 5, 0.08, random.Random(42))
    expect(len(w) == 3 and all(len(row) == 5 for row in w),
           f"matrix(3, 5, ...) has shape {len(w)}x{[len(r) for r in w]}, expected 3 rows of 5")
    expect(all(isinstance(v, Value) and v.grad == 0 and not v.children for row in w for v in row),
           "every entry of matrix(...) must be a fresh leaf Value")
    rng = random.Random(42)
    want = [[rng.gauss(0.0, 0.08) for _ in range(5)] for _ in range(3)]
    expect_close(w, want, "matrix(3, 5, std=0.08, random.Random(42))", rel=1e-12,
                 hint="draw rng.gauss(0.0, std) for each entry (std, not variance), row by row, "
                      "from the rng passed in (never the global random module)")


def test_matrix_rejects_a_negative_std():
    with pytest.raises(ValueError) as info:
        matrix(2, 2, -1.0, random.Random(0))
    expect("-1" in str(info.value), f"std=-1.0 raised ValueError({str(info.value)!r}), which "
           "does not give the value", hint="e.g. 'matrix: std must be >= 0, got -1.0'")
    for shape, zeros in (((1, 2), [[0, 0]]), ((2, 1), [[0], [0]])):
        got = [[v.data for v in row] for row in matrix(*shape, 0.0, random.Random(0))]
        expect(got == zeros, f"matrix{(*shape, 0.0)} must be {zeros}, got {got}",
               hint="std 0 and a single row or column are allowed; only std < 0 and a shape "
                    "with no rows or no columns are errors")
    for shape in ((0, 3), (3, 0)):
        with pytest.raises(ValueError) as info:
            matrix(*shape, 1.0, random.Random(0))
        expect(all(str(n) in str(info.value) for n in shape),
               f"matrix{shape} raised ValueError({str(info.value)!r}), which does not give the "
               "shape", hint="e.g. 'matrix: shape (0, 3) must have at least one row and column'")


def test_sgd_step_moves_against_the_gradient():
    a, b = Value(1.0), Value(-2.0)
    a.grad, b.grad = 2.0, -3.0
    sgd_step([a, b], lr=0.1)
    expect_close([a.data, b.data], [0.8, -1.7], "parameters after sgd_step(lr=0.1)",
                 hint="p.data -= lr * p.grad: downhill is against the gradient")
    expect_close([a.grad, b.grad], [2.0, -3.0], "grads after sgd_step",
                 hint="sgd_step changes data only; zero_grad clears grads")


def test_zero_grad_clears_every_grad():
    params = values([1, 2, 3])
    for p in params:
        p.grad = 5.0
    zero_grad(params)
    expect_close([p.grad for p in params] + [p.data for p in params], [0, 0, 0, 1, 2, 3],
                 "grads then data after zero_grad", hint="set p.grad = 0 and leave p.data alone")


# --- the MLP language model ---


def test_make_examples_with_a_context_of_one():
    got = make_examples([encode("ab")], context=1, bos_id=BOS)
    a, b = encode("ab")
    expect([(tuple(c), t) for c, t in got] == [((BOS,), a), ((a,), b), ((b,), BOS)],
           f"make_examples(['ab'], context=1) gave {got}", hint="context 1 is a bigram model")
    with pytest.raises(ValueError) as info:
        make_examples([encode("ab")], context=0, bos_id=BOS)
    expect("context" in str(info.value), f"context=0 raised ValueError({str(info.value)!r}), "
           "which does not name context", hint="e.g. 'context must be at least 1, got 0'")


def test_make_examples_worked_example():
    got = make_examples([encode("emma")], context=3, bos_id=BOS)
    e, m, a = encode("ema")
    want = [((BOS, BOS, BOS), e), ((BOS, BOS, e), m), ((BOS, e, m), m), ((e, m, m), a),
            ((m, m, a), BOS)]
    expect([(tuple(c), t) for c, t in got] == want,
           f"make_examples(['emma'], context=3) gave\n  {got}\nexpected\n  {want}",
           hint="read [BOS]*context + name + [BOS]; every window of `context` ids predicts the "
                "next one")


def test_make_examples_covers_every_name(names):
    examples = make_examples([encode(n) for n in names], context=3, bos_id=BOS)
    # one example per character plus one for the closing BOS: the 228,146 bigrams of kata 03
    expect(len(examples) == 228_146, f"{len(examples)} examples from the 32,033 names, "
           "expected 228,146 (one per character plus one BOS per name)")
    starts = sum(1 for c, _ in examples if tuple(c) == (BOS, BOS, BOS))
    ends = sum(1 for _, t in examples if t == BOS)
    expect(starts == ends == 32_033, f"{starts} examples start a name and {ends} end one; "
           "expected 32,033 each")


def test_parameter_count():
    # makemore's MLP (27 tokens, context 3, 10-dim embedding, 200 hidden) has 11,897 parameters:
    # 27*10 + 30*200 + 200 + 200*27 + 27.
    expect(num_params(27, 3, 10, 200) == 11_897,
           f"num_params(27, 3, 10, 200) = {num_params(27, 3, 10, 200)}, expected 11,897",
           hint="wte V*E + w1 H*(C*E) + b1 H + w2 V*H + b2 V")
    for sizes, want in [((27, 3, 10, 200), 11_897),
                        ((7, 2, 3, 5), 7 * 3 + 5 * 6 + 5 + 7 * 5 + 7)]:
        params = MLP(*sizes, rng=random.Random(0)).parameters()
        distinct = len({id(p) for p in params})
        expect(len(params) == want and distinct == want,
               f"MLP{sizes}.parameters() has {len(params)} entries "
               f"({distinct} distinct), expected {want} distinct Values",
               hint="list every weight and bias exactly once")


def test_mlp_values_and_gradients_match_torch():
    model = MLP(7, 2, 3, 5, random.Random(1))  # vocab 7, context 2, embedding 3, hidden 5
    rng = random.Random(5)
    for p in model.b1 + model.b2:  # make the biases non-zero so they are checked too
        p.data = rng.uniform(-0.5, 0.5)
    examples = [((0, 6), 3), ((6, 2), 5), ((2, 2), 0)]

    wte, w1, b1, w2, b2 = (tensor(datas(m)) for m in
                           (model.wte, model.w1, model.b1, model.w2, model.b2))
    contexts = torch.tensor([c for c, _ in examples])
    x_t = wte[contexts].reshape(len(examples), -1)  # embeddings of the context, concatenated
    logits_t = torch.relu(x_t @ w1.T + b1) @ w2.T + b2
    loss_t = F.cross_entropy(logits_t, torch.tensor([t for _, t in examples]))
    loss_t.backward()

    expect_close(model(examples[0][0]), logits_t[0].tolist(), "MLP logits for context (0, 6)",
                 rel=1e-9, hint="x = wte[c0] + wte[c1] (concatenated, oldest first); "
                                "h = relu(w1 x + b1); logits = w2 h + b2")
    loss = mean_loss(model, examples)
    expect_close(loss, loss_t.item(), "mean_loss over 3 examples", rel=1e-9,
                 hint="the average of cross_entropy(model(context), target)")
    loss.backward()
    for name, got, want in [("wte", model.wte, wte), ("w1", model.w1, w1), ("b1", model.b1, b1),
                            ("w2", model.w2, w2), ("b2", model.b2, b2)]:
        expect_close(grads(got), want.grad.tolist(), f"d mean_loss / d {name}", rel=1e-7,
                     abs=1e-12)


def test_mlp_rejects_a_context_of_the_wrong_length():
    with pytest.raises(ValueError) as info:
        MLP(7, 2, 3, 5, random.Random(0))((1, 2, 3))
    expect("2" in str(info.value) and "3" in str(info.value),
           f"an MLP with context 2 given 3 ids raised ValueError({str(info.value)!r}), which "
           "does not give both numbers", hint="e.g. 'MLP: expected 2 context ids, got 3'")
    with pytest.raises(ValueError) as info:
        mean_loss(MLP(7, 2, 3, 5, random.Random(0)), [])
    expect("example" in str(info.value),
           f"mean_loss of no examples raised ValueError({str(info.value)!r}), which does not "
           "say why", hint="an average over nothing is 0/0: 'mean_loss: got no examples'")


def test_train_step_clears_old_gradients():
    model = MLP(7, 2, 3, 5, random.Random(2))
    examples = [((0, 6), 3), ((6, 2), 5)]
    first = train_step(model, examples, lr=0.0)  # lr 0: the parameters do not move
    grads_once = [p.grad for p in model.parameters()]
    second = train_step(model, examples, lr=0.0)
    expect_close(second, first, "the loss returned by two train_steps with lr=0", rel=1e-12,
                 hint="train_step returns the loss computed before the update")
    expect_close([p.grad for p in model.parameters()], grads_once,
                 "grads after a second train_step with lr=0", rel=1e-9,
                 hint="backward() adds to .grad: call zero_grad before backward in every step")


def test_an_untrained_mlp_is_unsure(names):
    # Before training, every next letter should look about equally likely: a loss near
    # ln 27. Large initial weights make confident, random guesses and a loss of 50 or more.
    examples = make_examples([encode(n) for n in names[:40]], 3, BOS)
    for seed in range(2):
        loss = mean_loss(MLP(27, 3, 10, 64, random.Random(seed)), examples).data
        expect(abs(loss - math.log(27)) < 1.0,
               f"the initial loss of MLP(27, 3, 10, 64) (seed {seed}) on the first 40 names is "
               f"{loss:.3f}; expected within 1 of ln 27 = {math.log(27):.3f}",
               hint="scale each weight matrix by 1/sqrt(fan_in) (fan_in = the length of a row) "
                    "and start the biases at 0, so the logits start small")


def test_a_tiny_mlp_overfits_three_names():
    examples = make_examples([encode(n) for n in ("emma", "olivia", "ava")], 3, BOS)
    # The best any model can do on these 16 examples is the entropy of the target given its
    # context: (BOS, BOS, BOS) is followed by e, o and a once each, everything else is certain.
    pairs, contexts = Counter(examples), Counter(c for c, _ in examples)
    floor = -sum(n * math.log(n / contexts[c]) for (c, _), n in pairs.items()) / len(examples)
    expect_close(floor, 3 * math.log(3) / 16, "the floor of the loss (a check of this spec)")

    model = MLP(27, 3, 4, 16, random.Random(0))
    losses = [train_step(model, examples, lr=1.0) for _ in range(50)]
    expect(losses[-1] < floor + 0.1,
           f"after 50 SGD steps (lr 1.0) the loss is {losses[-1]:.3f} (it started at "
           f"{losses[0]:.3f}); expected below {floor + 0.1:.3f}, the best possible "
           f"{floor:.3f} plus 0.1", hint="check the order zero_grad -> loss -> backward -> "
                                          "sgd_step, and that sgd_step subtracts lr * grad")
