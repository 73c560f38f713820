"""Specs for kata 07. Oracles: torch.optim.Adam (and LambdaLR) in float64, and numbers worked by
hand from the update rule."""

import pytest
import torch
from adam import Adam, linear_decay
from hypothesis import given
from hypothesis import strategies as st
from value import Value

from harness.checks import expect, expect_close

# --- the worked example from the lesson ---


def test_worked_example_two_steps_with_a_constant_gradient():
    # lr 0.01, beta1 0.85, beta2 0.99, grad 0.5 on both steps. Step 1: m = 0.075, v = 0.0025,
    # m_hat = 0.075/0.15 = 0.5, v_hat = 0.0025/0.01 = 0.25, update 0.01 * 0.5/0.5 = 0.01.
    # Step 2: m = 0.13875, v = 0.004975, m_hat = 0.13875/0.2775 = 0.5, v_hat = 0.004975/0.0199
    # = 0.25: the update is 0.01 again.
    p = Value(1.0)
    opt = Adam([p])
    for want in (0.99, 0.98):
        opt.zero_grad()
        p.grad = 0.5
        opt.step()
        expect_close(p.data, want, "p after each Adam step with grad 0.5 (p starts at 1.0)",
                     rel=1e-7, hint="without bias correction the first step would be 0.015, "
                     "not 0.01: divide m by 1 - beta1**t and v by 1 - beta2**t, t starting at 1")


def test_the_first_step_moves_each_parameter_by_lr():
    # On step 1, m_hat = g and v_hat = g*g, so the update is lr * g / (|g| + eps) ~ lr * sign(g)
    # whatever the size of g. That is what bias correction buys.
    gs = [1e-3, -0.5, 3.0, -1e3, 0.0]
    params = [Value(0.0) for _ in gs]
    for p, g in zip(params, gs, strict=True):
        p.grad = g
    Adam(params, lr=0.05).step()
    want = [-0.05, 0.05, -0.05, 0.05, 0.0]
    expect_close([p.data for p in params], want,
                 f"parameters (all starting at 0) after one Adam step, lr 0.05, grads {gs}",
                 rel=1e-4, abs=1e-12,
                 hint="every parameter with a non-zero grad moves by ~lr against its sign; one "
                      "with grad 0 stays. A step of 1.5 * lr means no bias correction "
                      "(0.15 / sqrt(0.01)); a tiny grad that moves less than lr means eps "
                      "went inside the sqrt")


def test_step_leaves_the_grads_and_zero_grad_clears_them():
    params = [Value(1.0), Value(2.0)]
    params[0].grad, params[1].grad = 0.3, -0.7
    opt = Adam(params)
    opt.step()
    expect_close([p.grad for p in params], [0.3, -0.7], "grads after step()",
                 hint="step() reads the grads; clearing them is zero_grad's job")
    opt.zero_grad()
    expect_close([p.grad for p in params], [0.0, 0.0], "grads after zero_grad()")


# --- many steps against torch.optim.Adam on random problems ---


def loss_of(ps, coefs):
    """A smooth, non-separable loss of the parameters; works on Values and on tensors alike:
    sum_i a_i * (p_i - c_i)**2 + sum_i b_i * p_i * p_(i+1) + d * tanh(p_0)**3."""
    a, c, b, d = coefs
    n = len(ps)
    total = d * ps[0].tanh() ** 3
    for i in range(n):
        total = total + a[i] * (ps[i] - c[i]) ** 2 + b[i] * ps[i] * ps[(i + 1) % n]
    return total


@st.composite
def problems(draw):
    n = draw(st.integers(1, 5))
    floats = st.floats(-2, 2)
    start = draw(st.lists(floats, min_size=n, max_size=n))
    coefs = (draw(st.lists(st.floats(0.1, 3), min_size=n, max_size=n)),
             draw(st.lists(floats, min_size=n, max_size=n)),
             draw(st.lists(floats, min_size=n, max_size=n)),
             draw(floats))
    settings = dict(lr=draw(st.floats(1e-3, 0.2)), beta1=draw(st.floats(0.0, 0.95)),
                    beta2=draw(st.floats(0.5, 0.999)), eps=draw(st.sampled_from([1e-8, 1e-3])))
    return start, coefs, settings, draw(st.integers(1, 30))


def run_torch(start, coefs, settings, steps, torch_lambda=None):
    """Yield torch's params after each of `steps` torch.optim.Adam steps."""
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in start]
    t_opt = torch.optim.Adam(ts, lr=settings["lr"], betas=(settings["beta1"], settings["beta2"]),
                             eps=settings["eps"])
    t_sched = torch.optim.lr_scheduler.LambdaLR(t_opt, torch_lambda) if torch_lambda else None
    for _ in range(steps):
        t_opt.zero_grad()
        loss_of(ts, coefs).backward()
        t_opt.step()
        if t_sched:
            t_sched.step()
        yield [t.item() for t in ts]


def run_both(start, coefs, settings, steps, schedule=None, torch_lambda=None):
    """Yield (step, our params, torch's params) after each of `steps` Adam steps."""
    ps = [Value(x) for x in start]
    opt = Adam(ps, **settings, lr_schedule=schedule)
    for step, theirs in enumerate(run_torch(start, coefs, settings, steps, torch_lambda)):
        opt.zero_grad()
        loss_of(ps, coefs).backward()
        opt.step()
        yield step, [p.data for p in ps], theirs


@given(problems())
def test_many_steps_equal_torch_adam(problem):
    start, coefs, settings, steps = problem
    for step, ours, theirs in run_both(start, coefs, settings, steps):
        expect_close(ours, theirs, f"parameters after step {step + 1} of Adam({settings})",
                     rel=1e-7, abs=1e-9,
                     hint="m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; p -= lr * (m/(1-b1**t)) "
                          "/ (sqrt(v/(1-b2**t)) + eps), t = 1 on the first step; m and v are "
                          "kept per parameter; call zero_grad between steps")


def test_the_defaults_are_microgpts_settings():
    # lr 0.01, beta1 0.85, beta2 0.99, eps 1e-8
    start, coefs = [0.5, -1.0, 2.0], ([1.0, 2.0, 0.5], [0.1, -0.2, 0.3], [0.5, 0.0, -0.5], 0.7)
    ps = [Value(x) for x in start]
    opt = Adam(ps)
    defaults = dict(lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8)
    for step, theirs in enumerate(run_torch(start, coefs, defaults, 5)):
        opt.zero_grad()
        loss_of(ps, coefs).backward()
        opt.step()
        expect_close([p.data for p in ps], theirs, f"Adam(params) after step {step + 1}",
                     rel=1e-7, abs=1e-12,
                     hint="defaults: lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8")


# --- the learning-rate schedule ---


def test_linear_decay_values():
    schedule = linear_decay(0.01, 1000)
    got = [schedule(s) for s in (0, 1, 500, 999, 1000)]
    expect_close(got, [0.01, 0.00999, 0.005, 0.00001, 0.0],
                 "linear_decay(0.01, 1000) at steps 0, 1, 500, 999, 1000", rel=1e-9, abs=1e-15,
                 hint="lr * (1 - step / total_steps): the full lr at step 0, lr/1000 at the last "
                      "step (999)")


def test_linear_decay_is_zero_past_the_last_step():
    # A run that goes on past total_steps (a resumed run, a longer loop) must not get a
    # negative learning rate: Adam would then climb the loss.
    schedule = linear_decay(0.01, 1000)
    got = [schedule(s) for s in (1000, 1001, 1500, 5000)]
    expect_close(got, [0.0, 0.0, 0.0, 0.0], "linear_decay(0.01, 1000) at steps 1000, 1001, "
                 "1500, 5000", abs=0.0,
                 hint="from total_steps on the rate is 0, never negative: "
                      "lr * max(0.0, 1 - step / total_steps)")


def test_the_schedule_is_asked_for_steps_0_1_2_in_order():
    asked = []

    def schedule(step):
        asked.append(step)
        return 0.1 if step == 0 else 0.0

    p = Value(0.0)
    opt = Adam([p], lr=123.0, lr_schedule=schedule)
    for _ in range(3):
        p.grad = 1.0
        opt.step()
    expect(asked == [0, 1, 2], f"the schedule was called with {asked}, expected [0, 1, 2]",
           hint="the first step is step 0: call lr_schedule(step) before counting the step")
    expect_close(p.data, -0.1, "p after 3 steps whose learning rates are 0.1, 0, 0",
                 rel=1e-6, hint="with a schedule, step t uses lr_schedule(t), not lr")


@given(problems())
def test_linear_decay_equals_torch_adam_with_lambda_lr(problem):
    start, coefs, settings, steps = problem
    total = steps + 3
    schedule = linear_decay(settings["lr"], total)
    for step, ours, theirs in run_both(start, coefs, settings, steps, schedule,
                                       lambda s: 1 - s / total):
        expect_close(ours, theirs, f"parameters after step {step + 1} of Adam with "
                     f"linear_decay({settings['lr']:.4g}, {total})", rel=1e-7, abs=1e-9,
                     hint="step t (0-based) uses lr * (1 - t/total)")


# --- bad input ---


@pytest.mark.parametrize("kwargs", [dict(lr=-0.1), dict(beta1=1.0), dict(beta2=-0.1),
                                    dict(beta2=1.5), dict(eps=-1e-8)],
                         ids=["lr<0", "beta1=1", "beta2<0", "beta2>1", "eps<0"])
def test_bad_hyperparameters_are_clear_errors(kwargs):
    with pytest.raises(ValueError) as info:
        Adam([Value(1.0)], **kwargs)
    name = next(iter(kwargs))
    expect(name in str(info.value), f"Adam({kwargs}) raised ValueError({str(info.value)!r}), "
           f"which does not name {name}", hint="say which setting was wrong and what is allowed")


def test_no_parameters_is_a_clear_error():
    with pytest.raises(ValueError) as info:
        Adam([])
    expect("param" in str(info.value), f"Adam([]) raised ValueError({str(info.value)!r}), "
           "which does not say the parameter list is empty",
           hint="e.g. 'Adam: got no parameters to optimise'")


def test_the_edges_of_the_allowed_settings_are_allowed():
    # lr = 0 is allowed (lr < 0 is the error): a step then moves nothing.
    p = Value(1.0)
    p.grad = 0.5
    Adam([p], lr=0.0).step()
    expect_close(p.data, 1.0, "a parameter after one step with lr=0",
                 hint="only lr < 0 is an error; lr = 0 is a valid (if idle) setting")
    Adam([p], lr=0.1, eps=0.0, beta1=0.0, beta2=0.0).step()  # the edges of eps and the betas
    expect_close(p.data, 0.9, "a step of lr 0.1 with eps=0, beta1=beta2=0 and grad 0.5",
                 hint="eps = 0 and betas = 0 are allowed; then m_hat = g, v_hat = g**2 and the "
                      "step is lr * g / |g|")
    # A one-step decay: the full rate at step 0, then 0.
    expect_close([linear_decay(0.01, 1)(s) for s in (0, 1)], [0.01, 0.0],
                 "linear_decay(0.01, total_steps=1) at steps 0 and 1",
                 hint="total_steps = 1 is allowed; only total_steps < 1 is an error")
    with pytest.raises(ValueError) as info:
        linear_decay(0.01, 0)
    expect("total_steps" in str(info.value), f"linear_decay(0.01, 0) raised ValueError("
           f"{str(info.value)!r}), which does not name total_steps",
           hint="say which setting was wrong: 'total_steps must be at least 1, got 0'")
