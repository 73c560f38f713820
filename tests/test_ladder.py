"""The ladder as a learner climbs it: on their own code, one kata at a time.

`make check` runs each kata's stub on top of the earlier katas' *solutions*. A learner has no
solutions: their kata 11 is what they wrote in kata 11's stub, with the names the stub gave
them, and nothing the reference solution added on the side. These tests check what that
means for every kata, present and future (they read the katas from the tree):

- every name that a kata's stub, specs or notebook (or a program in scripts/) imports from a
  kata's module is defined by that kata's *stub* (as a stub to write, or given code), and
  no kata imports a later one;
- with the katas filled in order (each kata's solution copied over its stub, one kata at a
  time, the later ones left as stubs), every kata's modules import and every kata's specs
  collect, at every step.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import katas
from harness.katas import KATAS, NOTEBOOK_SOURCE, ROOT, Kata


def kata_of_module() -> dict[str, Kata]:
    """Module name -> the kata whose stub or solution defines it."""
    owner: dict[str, Kata] = {}
    for kata in KATAS:
        for impl in katas.IMPLS:
            for path in kata.modules(impl):
                owner.setdefault(path.stem, kata)
    return owner


def top_level_names(tree: ast.Module) -> set[str]:
    """The names a module defines at its top level, whatever way: def, class, assignment,
    import (a re-export counts), inside a top-level if/try/with as well."""
    names: set[str] = set()

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return names


def imported_names(tree: ast.AST, modules: set[str]) -> list[tuple[str, str, int, bool]]:
    """(module, name, line, lazy) for every name taken from one of `modules`: `from m import
    x` anywhere in the file, and `m.x` after `import m` (or `import m as alias`). lazy: the
    import sits inside a function, so it runs only when that function is called."""
    in_functions = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for inner in ast.walk(node)
        if inner is not node
    }
    found, aliases = [], {}
    for node in ast.walk(tree):
        lazy = id(node) in in_functions
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
            found += [(node.module, a.name, node.lineno, lazy) for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in modules:
                    aliases[a.asname or a.name] = (a.name, lazy)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            module, lazy = aliases[node.value.id]
            found.append((module, node.attr, node.lineno, lazy))
    return found


def files_that_import_katas(kata: Kata) -> list[Path]:
    """What a learner runs in a kata: its stub modules, its specs, its notebook."""
    notebook = kata.path() / NOTEBOOK_SOURCE
    return [*kata.modules("katas"), *kata.specs(), *([notebook] if notebook.exists() else [])]


def stub_names(module: str, owner: Kata) -> set[str]:
    return top_level_names(ast.parse((owner.path("katas") / f"{module}.py").read_text()))


def test_every_kata_pairs_its_stub_and_solution_modules():
    assert len(KATAS) >= 17, [str(k) for k in KATAS]
    seen: dict[str, Kata] = {}
    for kata in KATAS:
        stubs = {p.name for p in kata.modules("katas")}
        solved = {p.name for p in kata.modules("solutions")}
        assert stubs, f"kata {kata}: no stub module in katas/{kata.dirname}"
        assert stubs == solved, (
            f"kata {kata}: stub modules {sorted(stubs)} but solution "
            f"modules {sorted(solved)}; they must pair up one to one"
        )
        for name in stubs:
            assert name not in seen, (
                f"{name} is a module of kata {seen[name]} and of kata "
                f"{kata}: module names must be unique across the ladder"
            )
            seen[name] = kata


@pytest.mark.parametrize("kata", KATAS, ids=str)
def test_names_taken_from_a_kata_are_defined_by_its_stub(kata):
    owner = kata_of_module()
    problems = []
    for path in files_that_import_katas(kata):
        where = path.relative_to(ROOT)
        for module, name, line, lazy in imported_names(ast.parse(path.read_text()), set(owner)):
            source = owner[module]
            if source.number > kata.number and not lazy:
                problems.append(
                    f"{where}:{line} imports {module} (kata {source}), a later "
                    "kata, when it is imported: a learner has not written it yet "
                    "(import it inside the function that needs it, if at all)"
                )
            elif name == "*":
                problems.append(f"{where}:{line}: `from {module} import *`; name what you take")
            elif name not in stub_names(module, source):
                problems.append(
                    f"{where}:{line} takes {name!r} from {module}, but katas/{source.dirname}/"
                    f"{module}.py (the stub a learner fills in) does not define it: only the "
                    f"reference does. Add it to that stub, as a function the learner writes "
                    f"(and a spec of kata {source.number:02d} for it) or as given code"
                )
    assert not problems, "\n".join(problems)


def test_programs_take_from_the_katas_only_what_the_stubs_define():
    """make train IMPL=katas (and sample, microgpt) run the learner's own katas."""
    owner = kata_of_module()
    problems = []
    for path in sorted((ROOT / "scripts").glob("*.py")):
        for module, name, line, _ in imported_names(ast.parse(path.read_text()), set(owner)):
            if name != "*" and name not in stub_names(module, owner[module]):
                problems.append(
                    f"{path.relative_to(ROOT)}:{line} takes {name!r} from "
                    f"{module}, which katas/{owner[module].dirname} does not define"
                )
    assert not problems, "\n".join(problems)


# --- the ladder filled in order -----------------------------------------------------------

# Runs inside the copy: for each step, put that kata's solution over its stub, forget every
# module loaded from the copy's katas/, then import the modules and collect the specs of
# that kata and of every kata that imports it (nothing else can change when it is filled).
# One process for every step: torch and pytest load once.
CLIMB = r"""
import importlib, io, json, shutil, sys, traceback
from contextlib import redirect_stdout, redirect_stderr
from pathlib import Path
import pytest
from harness.katas import is_module

root = Path.cwd()
steps = json.loads(sys.argv[1])  # [[kata filled (or None), [dirs to check]], ...]
kata_dirs = [p for p in sorted((root / "katas").iterdir()) if p.is_dir()]
base_path = list(sys.path)
report = []
for filled, dirs in steps:
    if filled:
        for source in (root / "solutions" / filled).glob("*.py"):
            shutil.copy(source, root / "katas" / filled / source.name)
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(root / "katas")):
            del sys.modules[name]
    sys.path[:] = [str(d) for d in kata_dirs] + base_path
    problems = []
    modules = [p.stem for d in dirs for p in sorted((root / "katas" / d).glob("*.py"))
               if is_module(p)]
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException:
            problems.append(f"import {name}:\n" + traceback.format_exc(limit=-3))
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        code = pytest.main([*(f"katas/{d}" for d in dirs), "--collect-only", "-q",
                            "--impl=katas", "-p", "no:cacheprovider"])
    if code not in (0, 5):
        text = out.getvalue()
        errors = text.find("= ERRORS =")
        problems.append(f"pytest --collect-only exited {int(code)}:\n"
                        + text[text.rfind("\n", 0, errors) + 1 if errors >= 0 else 0:][-3000:])
    report.append([filled, problems])
print(json.dumps(report))
"""


def copy_tree(target: Path) -> None:
    """What collecting the specs needs: the harness, conftest, config, and the katas (stubs);
    solutions/ only as the source of each step's fill."""
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, target / name)
    ignore = shutil.ignore_patterns("*.ipynb", "__pycache__", "*.txt", ".*")
    for name in ("harness", "data", "katas", "solutions"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)


@pytest.mark.slow
def test_the_ladder_imports_at_every_step_of_filling_it_in_order(tmp_path):
    copy_tree(tmp_path)
    # Filling kata N can change only N and the katas that import it, directly or not.
    owner = kata_of_module()
    imports = {
        kata: {
            owner[module]
            for path in [*kata.modules("katas"), *kata.specs()]
            for module, *_ in imported_names(ast.parse(path.read_text()), set(owner))
        }
        for kata in KATAS
    }
    reaches = {kata: {kata} for kata in KATAS}
    for kata in KATAS:  # in ladder order: what a kata imports is complete before it
        for used in imports[kata]:
            if used.number < kata.number:
                reaches[kata] |= reaches[used]
    steps = [[None, [kata.dirname for kata in KATAS]]] + [
        [kata.dirname, [k.dirname for k in KATAS if kata in reaches[k]]] for kata in KATAS
    ]
    (tmp_path / "climb.py").write_text(CLIMB)
    run = subprocess.run(
        [sys.executable, "climb.py", json.dumps(steps)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(report) == len(steps)
    first_seen: dict[str, list[str]] = {}  # one problem usually repeats at many steps
    for filled, problems in report:
        step = "no kata" if filled is None else f"katas up to {filled}"
        for problem in problems:
            errors = "\n".join(line for line in problem.splitlines() if "Error:" in line)
            first_seen.setdefault(errors or problem, [step, problem])
    failures = [
        f"after filling in {step} (the later katas still stubs):\n{problem}"
        for step, problem in first_seen.values()
    ]
    assert not failures, "\n\n".join(failures)


def test_the_handouts_readme_points_at_nothing_the_handout_lacks():
    from harness.handout import HANDOUT_LACKS, README_NOTE, learners_readme

    text = learners_readme((ROOT / "README.md").read_text())
    title, _, rest = text.partition("\n")
    assert title == (ROOT / "README.md").read_text().partition("\n")[0]
    assert rest.startswith(README_NOTE)
    body = rest[len(README_NOTE) :]
    lacking = [line for line in body.splitlines() if any(m in line for m in HANDOUT_LACKS)]
    assert not lacking, f"the hand-out's README still says: {lacking}"
    assert "## The learner's loop" in body and "make test" in body
