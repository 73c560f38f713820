"""Write the figures the documentation quotes from the files they describe, so they cannot go
stale: `python scripts/docs_figures.py` (`--check`: change nothing, exit 1 naming each stale
block; tests/test_docs_figures.py runs that, so `make check` fails until the docs follow).

A block is marked in the Markdown as <!-- figures:NAME -->...<!-- /figures:NAME --> (inline or
around whole lines); everything between the two comments is rewritten from:

- harness/manifest.json: each kata's spec ids (`python -m harness.grade --update-manifest`);
- harness/stubs.json: the functions each stub leaves to write (`python -m harness.status
  --record-stubs`);
- harness/points.json: the points of each kata;
- configs/*.json: the presets `make train` takes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/grading.md")
BLOCK = re.compile(
    r"(<!-- figures:(?P<name>[a-z0-9-]+) -->)(?P<body>.*?)"
    r"(<!-- /figures:(?P=name) -->)",
    re.DOTALL,
)

# The README's example of a failing `make test`: kata 01 done, kata 02 half written.
FAILING = 9  # specs of kata 02 that fail in the example


def load(name: str) -> dict:
    return json.loads((ROOT / name).read_text())


def spec_counts() -> dict[str, int]:
    """Kata directory name -> how many specs it has (parametrized cases counted)."""
    return {
        kata: len(entry["specs"]) for kata, entry in load("harness/manifest.json")["katas"].items()
    }


def stub_counts() -> dict[str, int]:
    """Kata directory name -> how many functions its stub modules leave to write."""
    return {
        kata: sum(len(names) for names in modules.values())
        for kata, modules in load("harness/stubs.json").items()
    }


def kata_points() -> dict[str, float]:
    """Kata directory name -> its points, as harness/points.json sets them."""
    points = load("harness/points.json")
    return {kata: points["katas"].get(kata, points["default"]) for kata in spec_counts()}


def presets() -> list[str]:
    """The presets `make train` takes: as scripts/run_settings.py's presets() (posttrain*.json
    are the post-training track's configs)."""
    return sorted(
        p.stem for p in (ROOT / "configs").glob("*.json") if not p.stem.startswith("posttrain")
    )


def number(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{int(value):,}"


def label(kata: str) -> str:
    """How `make test` names a kata: `01 value      ` (harness/__main__.py's progress_line)."""
    num, name = kata.split("_", 1)
    return f"{num} {name:<12}"


def make_test_example() -> str:
    specs, stubs = spec_counts(), stub_counts()
    first, second, third = list(specs)[:3]
    total, k = specs[second], second[:2]
    lines = [
        "```",
        f"  ✓  {label(first)} {specs[first]}/{specs[first]}",
        f"  ✗  {label(second)} {total - FAILING}/{total}  <- you are here",
        f"  ·  {label(third)} not started ({stubs[third]} functions to write)",
        "  ...",
        f"Kata {second}: {FAILING} of {total} specs fail.",
        "",
        "✗ test_worked_example_vocabulary",
        "    AssertionError: CharTokenizer('hello world').chars: expected "
        "[' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w'], got ['h', 'e', 'l', 'o', ' ', 'w', 'r', 'd']",
        "      hint: chars = sorted(set(text)): each distinct character once, in sorted order "
        "(the space sorts first)",
        "...",
        f"Edit:   katas/{second}/tokenizer.py",
        f"Lesson: katas/{second}/README.md",
        f"More:   make kata K={k} (every spec, verbose)   make hint K={k} (a hint)",
        "",
        f"This is how an unfinished ladder looks, not a breakage: kata {second} is next. "
        "`make test` exits 1 until every kata passes. make reports that status in its own "
        "`*** [test] Error 1` line below.",
        f"make: *** [Makefile:{test_recipe_line()}: test] Error 1",
        "```",
    ]
    return "\n" + "\n".join(lines) + "\n"


def test_recipe_line() -> int:
    """The Makefile line make names when `make test` fails: the recipe under `test:`."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith("test:")) + 1


def preset_choice() -> str:
    return f"`PRESET={'|'.join(presets())}`"


def grade_line() -> str:
    """`make grade`'s line for a learner with the first four katas done and kata 05 half."""
    specs, points = spec_counts(), kata_points()
    katas = list(specs)
    done, half = katas[:4], katas[4]
    half_passed = specs[half] // 2
    score = sum(points[k] for k in done) + round(points[half] * half_passed / specs[half], 2)
    passed = sum(specs[k] for k in done) + half_passed
    return (
        f"`grade: {number(score)} / {number(sum(points.values()))} points; {len(done)} of "
        f"{len(katas)} katas complete; {passed:,} of {sum(specs.values()):,} specs pass`"
    )


def points_total() -> str:
    raw = load("harness/points.json")
    total = number(sum(kata_points().values()))
    if raw["katas"]:
        return f"a kata is worth {number(raw['default'])} unless `katas` names it ({total} in all)"
    return f"every kata is worth {number(raw['default'])} ({total} in all)"


def per_spec() -> str:
    specs, points = spec_counts(), kata_points()
    first = next(iter(specs))
    p, n = number(points[first]), specs[first]
    return f"with {n} specs (kata {first}) and {p} points, each passing spec earns {p}/{n}"


RENDER = {
    "make-test-example": make_test_example,
    "presets": preset_choice,
    "grade-line": grade_line,
    "points-total": points_total,
    "per-spec": per_spec,
}


def rewrite(text: str, where: str) -> tuple[str, list[str]]:
    """The text with every block rewritten, and the names of the blocks that changed."""
    changed = []

    def one(match: re.Match) -> str:
        name = match["name"]
        if name not in RENDER:
            raise SystemExit(
                f"{where}: unknown figures block {name!r} (known: {', '.join(RENDER)})"
            )
        body = RENDER[name]()
        if body != match["body"]:
            changed.append(name)
        return match[1] + body + match[4]

    return BLOCK.sub(one, text), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a block is stale"
    )
    args = parser.parse_args(argv)
    stale = []
    for doc in DOCS:
        path = ROOT / doc
        text = path.read_text()
        new, changed = rewrite(text, doc)
        if changed:
            stale.append(f"{doc} ({', '.join(changed)})")
        if changed and not args.check:
            path.write_text(new)
    if args.check and stale:
        print(
            f"stale figures in {'; '.join(stale)}: run python scripts/docs_figures.py",
            file=sys.stderr,
        )
        return 1
    print(f"rewrote {'; '.join(stale)}" if stale else f"up to date: {', '.join(DOCS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
