"""Assertions whose failure messages teach: what was checked, expected vs got, and a hint.

Specs use these instead of a bare `assert` when comparing numbers:

    expect_close(a.grad, 36.0, "dL/da for L = (a*b)**2 at a=2, b=3",
                 hint="the chain rule gives 2*(a*b)*b")
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _flat(x) -> list[float]:
    if hasattr(x, "tolist"):  # torch tensors, numpy arrays
        x = x.tolist()
    if isinstance(x, Sequence) and not isinstance(x, str):
        return [v for item in x for v in _flat(item)]
    return [float(getattr(x, "data", x))]  # a Value counts as its number


def _number(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e16 else f"{v:.6g}"


def _fmt(values: list[float], limit: int = 6) -> str:
    shown = ", ".join(_number(v) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]" if len(values) > 1 else shown


def expect_close(got, want, what: str, hint: str = "", rel: float = 1e-6, abs: float = 1e-9):
    """Fail unless got ≈ want elementwise. Both may be numbers, Values, lists or tensors."""
    g, w = _flat(got), _flat(want)
    lines = []
    if len(g) != len(w):
        lines.append(f"{what}: expected {len(w)} numbers, got {len(g)}")
    else:
        bad = [i for i, (a, b) in enumerate(zip(g, w))
               if not (math.isclose(a, b, rel_tol=rel, abs_tol=abs) or (a == b))]
        if not bad:
            return
        i = bad[0]
        where = ""
        if len(w) > 1:
            where = (f" (first mismatch at flat index {i} of {len(w)}: "
                     f"{_number(g[i])} vs {_number(w[i])})")
        lines.append(f"{what}:\n  expected {_fmt(w)}\n  got      {_fmt(g)}{where}")
    if hint:
        lines.append(f"  hint: {hint}")
    raise AssertionError("\n".join(lines))


def expect(condition: bool, message: str, hint: str = "") -> None:
    """Fail with a teaching message unless condition holds."""
    if not condition:
        raise AssertionError(message + (f"\n  hint: {hint}" if hint else ""))


def tensors_in(value):
    """Every tensor inside value, however deeply nested in dicts, lists and tuples."""
    import torch  # here, not at the top: the katas before 09 do not need it

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_in(item)


def on_meta(what: str, run, hint: str):
    """run() with its inputs on the meta device, which stands in for a GPU: a tensor made
    without device= lands on the CPU, and mixing it with meta tensors fails just as mixing it
    with CUDA tensors would. Fails, with the hint, when that happens or when a tensor run()
    returns is not on 'meta'; returns what run() returns. Code that reads tensor values
    (.item(), .tolist()) cannot run on meta tensors, which hold none: that skips the spec.
    """
    import pytest

    try:
        got = run()
    except (RuntimeError, NotImplementedError) as err:
        message = str(err)
        if "meta" in message and "device" not in message:  # it read values: cannot check
            pytest.skip(f"{what} reads tensor values, which the meta device cannot hold "
                        f"({message}); devices are not checked here")
        if isinstance(err, NotImplementedError):
            raise  # a stub, or something else unfinished
        if "device" not in message:
            hint = "the same call on CPU tensors has specs of its own: make those pass first"
        raise AssertionError(f"{what} on the 'meta' device raised RuntimeError: {message}\n"
                             f"  hint: {hint}") from None
    devices = [str(t.device) for t in tensors_in(got)]
    expect(all(d == "meta" for d in devices), f"{what} on the 'meta' device returned tensors "
           f"on {devices}", hint=hint)
    return got
