"""What `make status` and `make test` know without running a kata's specs.

- A kata is *not started* while every function its hand-out leaves to write (listed in
  harness/stubs.json) is still a bare `raise NotImplementedError`: its specs would all fail
  the same way, so they are not run.
- A kata's last results are kept in .status-cache.json (git-ignored), keyed by the sha256 of
  every file its specs read: its specs, its modules and those of every kata they import (from
  the directories IMPL= and REF= chose), conftest.py, harness/checks.py and the versions of
  Python, torch and Hypothesis. Change any of those and the kata runs again.

    python -m harness.status --record-stubs    # maintainers: rewrite harness/stubs.json
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
import threading
from importlib import metadata
from pathlib import Path

from harness.katas import KATAS, ROOT, Kata
from harness.notebook import _imported_names, _modules, _raises_not_implemented, needed_katas

STUBS = ROOT / "harness" / "stubs.json"
CACHE = ROOT / ".status-cache.json"
CACHE_ENTRIES = 200  # a few IMPL/REF choices of every kata, and their recent versions
SHARED_FILES = ("conftest.py", "harness/checks.py")


# --- untouched stubs -------------------------------------------------------------------


def _is_bare_stub(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The body is an optional docstring and one `raise NotImplementedError(...)`."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return len(body) == 1 and _raises_not_implemented(body[0])


def bare_stubs(path: Path) -> dict[str, ast.FunctionDef]:
    """The functions of a module (methods as Class.method) whose body is still the stub's."""
    found: dict[str, ast.FunctionDef] = {}

    def walk(node, prefix: str) -> None:
        for child in node.body:
            if isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if _is_bare_stub(child):
                    found[f"{prefix}{child.name}"] = child

    try:
        walk(ast.parse(path.read_text(), filename=str(path)), "")
    except (OSError, SyntaxError, ValueError):  # gone or mid-edit: the specs will say so
        return {}
    return found


def stubs_as_handed_out(directory: Path) -> dict[str, list[str]]:
    """{module file name: the functions left to write, in source order} for a directory of stubs."""
    return {p.name: list(bare_stubs(p)) for p in _modules(directory) if bare_stubs(p)}


def record_stubs() -> Path:
    """Write harness/stubs.json from katas/ (maintainers: katas/ holds the hand-out's stubs)."""
    stubs = {k.dirname: stubs_as_handed_out(k.path("katas")) for k in KATAS}
    STUBS.write_text(json.dumps(stubs, indent=1, sort_keys=True) + "\n")
    return STUBS


def _recorded_stubs() -> dict:
    try:
        return json.loads(STUBS.read_text())
    except (OSError, ValueError):
        return {}


def not_started(kata: Kata, directory: Path) -> list[str] | None:
    """The functions still to write, as "file: name", when the kata in `directory` is the
    untouched hand-out (every function it leaves to write is still a bare stub); else None."""
    if directory.parent.name != "katas":
        return None  # the reference
    recorded = _recorded_stubs().get(kata.dirname)
    if not recorded:
        return None  # a kata harness/stubs.json does not know yet: run its specs
    todo = []
    for name, functions in recorded.items():
        left = bare_stubs(directory / name)
        if not set(functions) <= set(left):
            return None
        todo.extend(f"{name}: {f}" for f in functions)
    return todo


def stub_message(kata: Kata, directory: Path) -> str:
    """The message the kata's first stub raises, read from its source (nothing is run)."""
    recorded = _recorded_stubs().get(kata.dirname, {})
    for name, functions in recorded.items():
        path = directory / name
        tree = ast.parse(path.read_text())
        constants = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
            and isinstance(n.value, ast.Constant)
            and isinstance(n.value.value, str)
        }
        stub = bare_stubs(path).get(functions[0])
        if stub is not None:
            return _render(stub.body[-1].exc, constants)
    return ""


def _render(exc: ast.expr, constants: dict[str, str]) -> str:
    """The text of `NotImplementedError(<string or f-string>)`, module constants filled in."""
    if not (isinstance(exc, ast.Call) and exc.args):
        return ""
    text = []
    parts = exc.args[0].values if isinstance(exc.args[0], ast.JoinedStr) else [exc.args[0]]
    for part in parts:
        if isinstance(part, ast.Constant):
            text.append(str(part.value))
        elif (
            isinstance(part, ast.FormattedValue)
            and isinstance(part.value, ast.Name)
            and part.value.id in constants
        ):
            text.append(constants[part.value.id])
        else:
            text.append("{" + ast.unparse(part) + "}")
    return "".join(text)


# --- the results cache -----------------------------------------------------------------


def spec_inputs(kata: Kata, dirs: list[Path]) -> list[Path]:
    """Every file the kata's specs read: the specs, the modules of the kata and of every kata
    they import (directly or not, from the chosen directories), and the shared spec code."""
    by_module = {p.stem: k for k, d in zip(KATAS, dirs) for p in _modules(d)}
    imported = [
        by_module[name]
        for spec in kata.specs()
        for name in _imported_names(spec)
        if name in by_module
    ]
    katas = needed_katas([kata, *imported], dirs)
    modules = [p for k in katas for p in _modules(dirs[KATAS.index(k)])]
    return [*kata.specs(), *modules, *(ROOT / f for f in SHARED_FILES)]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def cache_key(kata: Kata, dirs: list[Path], environment: str) -> str:
    digest = hashlib.sha256(environment.encode())
    for path in spec_inputs(kata, dirs):
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"(missing)")
        digest.update(b"\0")
    return digest.hexdigest()


def environment() -> str:
    """What else changes results: the interpreter, torch, Hypothesis and its profile."""
    return "|".join(
        [
            sys.version,
            _version("torch"),
            _version("hypothesis"),
            os.environ.get("HYPOTHESIS_PROFILE", ""),
            os.environ.get("CI", ""),
        ]
    )


class ResultCache:
    """{cache key: a run's outcome} in .status-cache.json; a missing or damaged file is empty."""

    def __init__(self, path: Path = CACHE):
        self.path = path
        try:
            self.entries: dict[str, dict] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        if not isinstance(self.entries, dict):
            self.entries = {}
        self.changed = False
        self.lock = threading.Lock()  # katas run in threads and store their results as they end

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, run: dict) -> None:
        with self.lock:
            self.entries.pop(key, None)
            self.entries[key] = run  # newest last; the oldest go first when there are too many
            while len(self.entries) > CACHE_ENTRIES:
                del self.entries[next(iter(self.entries))]
            self.changed = True

    def save(self) -> None:
        with self.lock:
            if not self.changed:
                return
            text, self.changed = json.dumps(self.entries), False
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only checkout: the next run just runs the specs again
        finally:
            tmp.unlink(missing_ok=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["--record-stubs"]:
        sys.exit("usage: python -m harness.status --record-stubs")
    print(f"wrote {record_stubs().relative_to(ROOT)}")
