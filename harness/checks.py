"""Assertions whose failure messages teach: what was checked, expected vs got, and a hint.

Specs use these instead of a bare `assert` when comparing numbers:

    expect_close(a.grad, 36.0, "dL/da for L = (a*b)**2 at a=2, b=3",
                 hint="the chain rule gives 2*(a*b)*b")

Only plain values are compared: numbers of the exact types int, float and bool (and numpy's
scalars), real lists and tuples, real `torch.Tensor`s and numpy arrays, and a `Value` through
its `.data`. They are converted by trusted code (`torch.Tensor.tolist`, never the object's own
`tolist`). Anything else (an object that says it equals whatever it is compared with, a
subclass of float or of Tensor that converts itself as it likes) fails with a message that
says so: `plain(x, what)` is that conversion, for specs that compare with `==`.

`guard_learner_classes(files)` (installed by the grader's plugin, harness/report.py) refuses,
as they are made, classes in the learner's modules that subclass a number, a container or a
tensor and change how it compares or converts, and fails the comparison of any learner
object that claims to equal something it was never shown.
"""

from __future__ import annotations

import builtins
import functools
import math
import os
import sys

PLAIN_SCALARS = (bool, int, float)
PLAIN_HINT = (
    "return a real float or int, a real list (or tuple) of them, or a real "
    "torch.Tensor: not a subclass of one, and not an object of your own that "
    "overrides ==, float() or tolist()"
)


class NotPlain(AssertionError):
    """A value of a type the checks do not compare (see the module's docstring)."""


def _describe(value) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def plain(value, what: str = "the value", hint: str = PLAIN_HINT):
    """`value` as plain Python data (bool/int/float/str/None, lists, tuples, dicts of them),
    converted by trusted code; NotPlain (an AssertionError) for any other type."""
    kind = type(value)
    if kind in PLAIN_SCALARS or kind is str or value is None:
        return value
    if kind is list or kind is tuple:
        return (
            kind(plain(v, what, hint) for v in list.__iter__(value))
            if kind is list
            else tuple(plain(v, what, hint) for v in tuple.__iter__(value))
        )
    if kind is dict:
        return {plain(k, what, hint): plain(v, what, hint) for k, v in dict.items(value)}
    if kind is range:
        return list(value)
    torch = sys.modules.get("torch")
    if torch is not None:
        if kind is torch.Tensor or kind is torch.nn.Parameter:
            return torch.Tensor.tolist(torch.Tensor.detach(value))
        if kind is torch.Size:
            return [int(v) for v in tuple.__iter__(value)]
        if kind is torch.dtype or kind is torch.device:
            return str(value)
    np = sys.modules.get("numpy")
    if np is not None:
        if kind is np.ndarray:
            return np.ndarray.tolist(value)
        if isinstance(value, np.generic) and kind.__module__ == "numpy":
            return value.item()
    data = getattr(value, "data", None)  # a Value (kata 01) counts as its number
    if data is not None and data is not value and _is_scalar(data):
        return plain(data, what, hint)
    raise NotPlain(
        f"{what}: got an object of type {_describe(value)}, which the specs do not "
        f"compare: they compare plain values only\n  hint: {hint}"
    )


def _is_scalar(x) -> bool:
    """A plain number of one of the exact types plain() takes (no learner objects)."""
    kind = type(x)
    if kind in PLAIN_SCALARS:
        return True
    np, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    if np is not None and isinstance(x, np.generic) and kind.__module__ == "numpy":
        return True
    return torch is not None and kind is torch.Tensor and torch.Tensor.dim(x) == 0


def _flat(x, what: str) -> list[float]:
    value = plain(x, what)
    out: list[float] = []

    def walk(v):
        if type(v) in (list, tuple):
            for item in v:
                walk(item)
        elif type(v) in PLAIN_SCALARS:
            out.append(float(v))
        else:
            raise NotPlain(
                f"{what}: found {v!r} ({_describe(v)}) where a number was expected"
                f"\n  hint: {PLAIN_HINT}"
            )

    walk(value)
    return out


def _number(v: float, digits: int = 6) -> str:
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return f"{v:.{digits}g}" if digits < 17 else repr(v)


def _digits(a: float, b: float) -> int:
    """Enough significant digits that a and b do not print alike."""
    for digits in (6, 10, 13, 17):
        if _number(a, digits) != _number(b, digits):
            return digits
    return 17


def _fmt(values: list[float], limit: int = 6, digits: int = 6) -> str:
    shown = ", ".join(_number(v, digits) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]" if len(values) > 1 else shown


def expect_close(got, want, what: str, hint: str = "", rel: float = 1e-6, abs: float = 1e-9):
    """Fail unless got ≈ want elementwise. Both may be numbers, Values, lists or tensors of
    the exact types the module's docstring lists."""
    g, w = _flat(got, f"{what} (what your code gave)"), _flat(want, f"{what} (the expected)")
    lines = []
    if len(g) != len(w):
        lines.append(f"{what}: expected {len(w)} numbers, got {len(g)}")
    else:
        bad = [
            i
            for i, (a, b) in enumerate(zip(g, w))
            if not (math.isclose(a, b, rel_tol=rel, abs_tol=abs) or (a == b))
        ]
        if not bad:
            return
        i = bad[0]
        digits = _digits(g[i], w[i])
        error = builtins.abs(g[i] - w[i])
        relative = error / builtins.abs(w[i]) if w[i] else math.inf
        where = f"element {i} (flat index) of {len(w)}: " if len(w) > 1 else ""
        lines.append(
            f"{what}:\n  expected {_fmt(w, digits=digits)}\n  got      "
            f"{_fmt(g, digits=digits)}\n  {where}got {_number(g[i], digits)}, expected "
            f"{_number(w[i], digits)}: off by {error:.3g} (relative {relative:.3g}); "
            f"allowed: relative {rel:g} or absolute {abs:g}"
            + (f"; {len(bad)} of {len(w)} elements are off" if len(bad) > 1 else "")
        )
    if hint:
        lines.append(f"  hint: {hint}")
    raise AssertionError("\n".join(lines))


def expect(condition, message: str, hint: str = "") -> None:
    """Fail with a teaching message unless condition holds. The condition must be a plain
    truth (a bool, a plain value, a real tensor or array): an object of the learner's own
    that decides for itself whether it is true is refused."""
    if not _plain_truth(condition):
        raise NotPlain(
            f"{message}\n  (the check got an object of type {_describe(condition)} "
            f"where True or False was expected: something compared as it liked)"
            f"\n  hint: {PLAIN_HINT}"
        )
    if not condition:
        raise AssertionError(message + (f"\n  hint: {hint}" if hint else ""))


def _plain_truth(condition) -> bool:
    kind = type(condition)
    if kind in PLAIN_SCALARS or condition is None or kind in (str, list, tuple, dict, set):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and kind is torch.Tensor:
        return True
    np = sys.modules.get("numpy")
    return np is not None and (kind is np.ndarray or kind is np.bool_)


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
            pytest.skip(
                f"{what} reads tensor values, which the meta device cannot hold "
                f"({message}); devices are not checked here"
            )
        if isinstance(err, NotImplementedError):
            raise  # a stub, or something else unfinished
        if "device" not in message:
            hint = "the same call on CPU tensors has specs of its own: make those pass first"
        raise AssertionError(
            f"{what} on the 'meta' device raised RuntimeError: {message}\n  hint: {hint}"
        ) from None
    devices = [str(t.device) for t in tensors_in(got)]
    expect(
        all(d == "meta" for d in devices),
        f"{what} on the 'meta' device returned tensors on {devices}",
        hint=hint,
    )
    return got


# --- the learner's classes, watched as they are made (harness/report.py installs this) -------

VALUE_BASES = (int, float, complex, str, bytes, list, tuple, dict, set, frozenset)
# What a subclass of a value type may not redefine: how it compares, converts or is read.
REDEFINED = (
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__hash__",
    "__float__",
    "__int__",
    "__index__",
    "__bool__",
    "__complex__",
    "__abs__",
    "__round__",
    "__len__",
    "__iter__",
    "__getitem__",
    "__contains__",
    "__sub__",
    "__rsub__",
    "__torch_function__",
    "__torch_dispatch__",
    "__array__",
    "__array_ufunc__",
    "__array_function__",
    "tolist",
    "item",
)
TRUSTED_MODULES = ("builtins", "torch", "numpy", "collections", "typing", "enum")


class _Stranger:
    """An object that no honest value equals: what a suspicious == is asked about."""

    __slots__ = ()


def _value_bases() -> tuple[type, ...]:
    bases = list(VALUE_BASES)
    for module, names in (("torch", ("Tensor",)), ("numpy", ("ndarray", "generic"))):
        if module in sys.modules:
            bases += [getattr(sys.modules[module], n) for n in names]
    return tuple(bases)


def _own(kind: type) -> bool:
    return kind.__module__.split(".")[0] not in TRUSTED_MODULES


def _refuse_value_subclass(cls: type, where: str) -> None:
    base = next((b for b in _value_bases() if issubclass(cls, b)), None)
    if base is None:
        return
    changed = sorted(
        {n for k in cls.__mro__ if _own(k) for n in REDEFINED if vars(k).get(n, None) is not None}
    )
    if changed:
        raise NotPlain(
            f"class {cls.__qualname__} in {where} subclasses {base.__qualname__} and "
            f"redefines {', '.join(changed)}: the specs compare plain values, so a "
            f"value that changes how it compares or converts is refused\n"
            f"  hint: return real {base.__qualname__} objects; {PLAIN_HINT}"
        )


def _watch_equality(cls: type, name: str, where: str) -> None:
    """Wrap cls's own __eq__ / __ne__: when it claims a verdict, ask it the same about a
    stranger; an object that equals (or never differs from) anything is refused."""
    original = vars(cls)[name]
    if not callable(original):
        return
    claims = (lambda r: bool(r)) if name == "__eq__" else (lambda r: not bool(r))

    def claimed(result) -> bool:
        if result is NotImplemented:
            return False
        torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
        if (torch is not None and type(result) is torch.Tensor) or (
            np is not None and type(result) is np.ndarray
        ):
            return False  # elementwise comparison: judged by whoever reads it
        try:
            return claims(result)
        except Exception:
            return False

    @functools.wraps(original)
    def watched(self, other):
        result = original(self, other)
        if claimed(result) and type(other) is not _Stranger:
            try:
                probe = original(self, _Stranger())
            except Exception:
                probe = NotImplemented
            if claimed(probe):
                verdict = "equals" if name == "__eq__" else "never differs from"
                raise NotPlain(
                    f"an object of class {cls.__qualname__} (from {where}) "
                    f"{verdict} a {type(other).__qualname__} it was compared with, "
                    f"and just as readily an object it has never seen: the specs "
                    f"compare plain values, so such an object is refused\n"
                    f"  hint: {PLAIN_HINT}"
                )
        return result

    setattr(cls, name, watched)


def inspect_learner_class(cls: type, where: str) -> None:
    """What guard_learner_classes does with each class the learner's code makes."""
    _refuse_value_subclass(cls, where)
    for name in ("__eq__", "__ne__"):
        if name in vars(cls):
            _watch_equality(cls, name, where)


def guard_learner_classes(files) -> None:
    """From now on, inspect every class whose body is in one of `files` (the learner's
    modules) as it is made (builtins.__build_class__), and refuse unittest.mock.ANY in a
    comparison. Idempotent."""
    paths = {os.path.realpath(f) for f in files}
    original = builtins.__build_class__
    if getattr(original, "gpt_katas_guard", False):
        original.paths.update(paths)
        return
    known: dict[str, bool] = {}

    def build_class(func, name, *bases, **kwargs):
        cls = original(func, name, *bases, **kwargs)
        code = getattr(func, "__code__", None)
        if code is not None and isinstance(cls, type):
            filename = code.co_filename
            if filename not in known:
                known[filename] = os.path.realpath(filename) in build_class.paths
            if known[filename]:
                inspect_learner_class(cls, os.path.basename(filename))
        return cls

    build_class.gpt_katas_guard = True
    build_class.paths = paths
    builtins.__build_class__ = build_class
    import unittest.mock

    def no_any(self, other):
        raise NotPlain(
            f"unittest.mock.ANY was compared with {type(other).__qualname__}: it "
            f"equals anything, so the specs refuse it\n  hint: {PLAIN_HINT}"
        )

    type(unittest.mock.ANY).__eq__ = no_any
    type(unittest.mock.ANY).__ne__ = no_any
