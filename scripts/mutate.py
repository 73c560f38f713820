"""Mutation testing for maintainers: how many deliberate bugs in each reference solution do
the kata's specs catch?

    make mutate            every kata (slow: tens of minutes on two cores)
    make mutate K=03       one kata (K=01,03 or K=01-04 for several)
    scripts/mutate.py --kata 12 --again results.json
                           only the survivors a run saved with --json, after specs were added
                           (the solution unchanged, so the mutants keep their names)
    scripts/mutate.py --report results.json
                           print saved results again, after listing equivalent mutants

For each kata this builds a throw-away tree where the solution module is the only code
mutmut (version 3) mutates, runs mutmut there against that kata's specs (--impl=solutions,
earlier katas from the reference), and prints killed / survived per kata, with each survivor
that tests/mutation/equivalent.txt does not explain. A survivor listed there is a mutant that
behaves exactly like the solution (an equivalent mutant), with the reason it is one.
The target: at least 95% of the non-equivalent mutants killed in every kata.

Mutants of code the learner is given (a function that reads the same in the stub and in the
solution, such as kata 16's ModernConfig) are counted apart: the specs check what a learner
writes, and nobody writes those.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import katas  # noqa: E402

EQUIVALENT = ROOT / "tests" / "mutation" / "equivalent.txt"
TARGET = 0.95
# mutmut exit codes that mean the specs caught the mutant (a failure, or a timeout: a loop
# that never ends is caught too)
KILLED = {1, 3, 36, 24, -24, 152, 255, -9, -11}
SETUP_CFG = """\
[mutmut]
source_paths = src
also_copy =
    harness
    data
    katas
    solutions
    scripts
    configs
    conftest.py
pytest_add_cli_args =
    --impl=solutions
pytest_add_cli_args_test_selection = katas/{kata}
process_isolation = forkserver
"""


def equivalent_mutants() -> dict[str, str]:
    """mutant name -> why it is equivalent, from tests/mutation/equivalent.txt
    (lines `name: reason`; blank lines and # comments ignored)."""
    found = {}
    for line in EQUIVALENT.read_text().splitlines() if EQUIVALENT.exists() else []:
        name, _, reason = line.partition(":")
        if name.strip() and not name.lstrip().startswith("#"):
            found[name.strip()] = reason.strip()
    return found


def build_tree(kata: katas.Kata, where: Path) -> None:
    """A copy of the repository in which kata's solution modules live in src/ (the only
    code mutmut mutates) and nowhere else, so `import <module>` finds the mutant."""
    for name in ("harness", "scripts", "configs"):
        shutil.copytree(ROOT / name, where / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data", where / "data", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy2(ROOT / name, where / name)
    for other in katas.KATAS:
        (where / "katas" / other.dirname).mkdir(parents=True)
        shutil.copytree(
            other.path("solutions"),
            where / "solutions" / other.dirname,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    for spec in kata.specs():
        shutil.copy2(spec, where / "katas" / kata.dirname / spec.name)
    (where / "src").mkdir()
    for module in kata.modules("solutions"):
        shutil.move(where / "solutions" / kata.dirname / module.name, where / "src" / module.name)
    (where / "setup.cfg").write_text(SETUP_CFG.format(kata=kata.dirname))


def given_functions(kata: katas.Kata) -> set[str]:
    """'function' or 'Class.method' for every function whose code (docstrings aside) is the
    same in the stub and in the solution: code the learner is given, not asked to write."""

    def code(path: Path) -> dict[str, str]:
        found = {}
        for node in ast.parse(path.read_text()).body:
            methods = node.body if isinstance(node, ast.ClassDef) else [node]
            for fn in methods:
                if isinstance(fn, ast.FunctionDef):
                    body = fn.body[1:] if ast.get_docstring(fn) is not None else fn.body
                    name = fn.name if fn is node else f"{node.name}.{fn.name}"
                    found[name] = (
                        ast.dump(ast.Module(body=body, type_ignores=[]))
                        + ast.dump(fn.args)
                        + "".join(ast.dump(d) for d in fn.decorator_list)
                    )
        return found

    given = set()
    for stub in kata.modules("katas"):
        solution = kata.path("solutions") / stub.name
        if solution.exists():
            ours, theirs = code(stub), code(solution)
            given |= {name for name, text in ours.items() if theirs.get(name) == text}
    return given


def function_of(mutant: str) -> str:
    """'modern.xǁModernConfigǁ__post_init____mutmut_16' -> 'ModernConfig.__post_init__';
    'modern.x_describe__mutmut_1' -> 'describe'."""
    name = mutant.split(".", 1)[1].rsplit("__mutmut_", 1)[0]
    if name.startswith("xǁ"):
        return ".".join(name[2:].split("ǁ"))
    return name[2:]


def function_sources(module: Path) -> dict[str, str]:
    """Every function in mutmut's rewritten module (originals and mutants), by name."""
    text = module.read_text()
    lines = text.splitlines()  # once: get_source_segment would split the file per function
    return {
        node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef)
    }


def mutant_diff(name: str, sources: dict[str, str]) -> list[str]:
    """The lines a mutant changed: '- original' and '+ mutated'."""
    function = name.split(".", 1)[1]
    orig_name = function.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    original = sources.get(orig_name, "").replace(orig_name, "f", 1)
    mutant = sources.get(function, "").replace(function, "f", 1)
    lines = difflib.ndiff(original.splitlines(), mutant.splitlines())
    return [line.rstrip() for line in lines if line.startswith(("- ", "+ "))]


LITERAL = re.compile(r'"[^"]*"|\'[^\']*\'')  # a string literal in one line of code


def only_wording(diff: list[str]) -> bool:
    """True when the mutant only changed the case of a message, or wrapped it in XX: every
    string literal it changed has spaces (a message, not a key or a name) and reads the same
    to a person, and nothing outside the literals changed."""
    removed = " ".join(line[2:].strip() for line in diff if line.startswith("- "))
    added = " ".join(line[2:].strip() for line in diff if line.startswith("+ "))
    old, new = LITERAL.findall(removed), LITERAL.findall(added)
    if (
        not removed
        or removed == added
        or len(old) != len(new)
        or LITERAL.sub('""', removed) != LITERAL.sub('""', added)
    ):
        return False
    changed = [(a, b) for a, b in zip(old, new) if a != b]
    return all(" " in a and b.replace("XX", "").lower() == a.lower() for a, b in changed)


def run_kata(kata: katas.Kata, children: int, keep: bool, before: dict | None = None) -> dict:
    """mutmut over kata's solution; with `before` (an earlier result for this kata) only the
    mutants that survived it are run again, and the rest keep their verdict."""
    # Survivors in given code are counted apart anyway: they keep their verdict.
    given = given_functions(kata)
    kept = [s for s in before["survivors"] if function_of(s) in given] if before else []
    again = [s for s in before["survivors"] if function_of(s) not in given] if before else []
    if before and not again:
        return before
    where = Path(tempfile.mkdtemp(prefix=f"mutate-{kata.dirname}-"))
    try:
        build_tree(kata, where)
        mutmut = Path(sys.executable).parent / "mutmut"
        run = subprocess.run(
            [str(mutmut), "run", "--max-children", str(children), *again],
            cwd=where,
            capture_output=True,
            text=True,
        )
        verdicts: dict[str, int | None] = {}
        sources: dict[str, str] = {}
        for meta in sorted((where / "mutants" / "src").glob("*.meta")):
            verdicts.update(json.loads(meta.read_text())["exit_code_by_key"])
            sources.update(function_sources(meta.with_suffix("")))
        if before and verdicts:
            if not set(again) <= set(verdicts):
                return {
                    "kata": kata.dirname,
                    "error": "the solution changed since that run "
                    "(its mutants have other names): run the whole kata again",
                }
            verdicts = {**{k: verdicts[k] for k in again}, **{k: before["codes"][k] for k in kept}}
        if not verdicts:
            tail = (run.stdout + run.stderr)[-3000:]
            return {"kata": kata.dirname, "error": f"mutmut produced no results:\n{tail}"}
        survivors = sorted(k for k, code in verdicts.items() if code not in KILLED)
        return {
            "kata": kata.dirname,
            "mutants": before["mutants"] if before else sorted(verdicts),
            "survivors": survivors,
            "codes": {k: verdicts[k] for k in survivors},
            "diffs": {k: mutant_diff(k, sources) for k in survivors},
        }
    finally:
        if keep:
            print(f"  (kept {where})")
        else:
            shutil.rmtree(where, ignore_errors=True)


def report(result: dict, equivalent: dict[str, str]) -> bool:
    """Print one kata's figures and its unexplained survivors; True when it meets the target."""
    if "error" in result:
        print(f"{result['kata']}: {result['error']}")
        return False
    kata = next(k for k in katas.KATAS if k.dirname == result["kata"])
    given = given_functions(kata)
    n_given = sum(function_of(m) in given for m in result["mutants"])
    survivors = [s for s in result["survivors"] if function_of(s) not in given]
    wording = [s for s in survivors if only_wording(result["diffs"][s])]
    known = [s for s in survivors if s in equivalent and s not in wording]
    real = [s for s in survivors if s not in equivalent and s not in wording]
    counted = len(result["mutants"]) - n_given - len(known) - len(wording)
    killed = counted - len(real)
    share = killed / counted if counted else 1.0
    print(
        f"{result['kata']}: {len(result['mutants'])} mutants, {n_given} in given code, "
        f"{len(known)} listed as equivalent, {len(wording)} only reworded a message; "
        f"{killed}/{counted} of the rest killed ({share:.1%})"
        f"{'' if share >= TARGET else f'  below the {TARGET:.0%} target'}"
    )
    for name in real:
        print(f"  survived ({result['codes'][name]}): {name}")
        for line in result["diffs"][name]:
            print(f"      {line}")
    return share >= TARGET


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kata", default="", help="which katas: 03, 01,03 or 01-04 (all if not given)"
    )
    parser.add_argument("--children", type=int, default=1, help="mutants run at once")
    parser.add_argument("--keep", action="store_true", help="keep each kata's mutmut tree")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--again",
        type=Path,
        help="run only the survivors of the results "
        "saved in this file (by --json) for the katas chosen",
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="run nothing: print the results saved in "
        "this file (by --json) against tests/mutation/equivalent.txt as it is",
    )
    args = parser.parse_args()
    try:
        numbers = katas.parse_ref(args.kata)
    except ValueError as err:
        print(f"error: {err}".replace("REF=", "K="), file=sys.stderr)
        return 2
    chosen = [k for k in katas.KATAS if not numbers or k.number in numbers]
    equivalent = equivalent_mutants()
    if args.report:
        saved = json.loads(args.report.read_text())
        return 0 if all([report(r, equivalent) for r in saved]) else 1
    before = {r["kata"]: r for r in json.loads(args.again.read_text())} if args.again else {}
    if args.again:
        chosen = [k for k in chosen if k.dirname in before and "error" not in before[k.dirname]]
    results, ok = [], True
    for kata in chosen:
        result = run_kata(kata, args.children, args.keep, before.get(kata.dirname))
        results.append(result)
        ok = report(result, equivalent) and ok
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
