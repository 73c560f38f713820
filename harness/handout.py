"""Build the learners' repository: this one without the reference solutions.

    python -m harness.handout DEST          (make handout DEST=dir)

DEST gets every file of the repository (tracked, or untracked and not ignored) except the
maintainers' parts below, and its own spec manifest and Classroom config, written from the
copied files, and a note at the top of its README.md saying what works without solutions/
(the README's paragraphs about REF=, IMPL=solutions and solutions/ are left out). In
DEST, `make test`, `make grade` and `make data` work as they do here; whatever runs the
reference (`make train` and the other programs by default, `IMPL=solutions`, `REF=`, `make
check`, `make notebooks`) does not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.data import fetch
from harness.grader.manifest import classroom_config, kata_entry, write_json
from harness.grader.trusted import (
    CLASSROOM,
    MANIFEST,
    UPDATE_COMMAND,
    grader_files,
    load_manifest,
    verify,
)
from harness.katas import ROOT, discover

# Left out of the handout: the reference, the maintainers' tests and CI, this builder.
LEFT_OUT_DIRS = ("solutions/", "tests/", ".ci/")
LEFT_OUT_FILES = ("harness/handout.py",)
KEPT_WORKFLOWS = (".github/workflows/grade.yml",)

# Put under the README's first line: what a learner meets where the handout has no reference.
README_NOTE = """
> **This is the learners' copy: the reference solutions (`solutions/`) are not included.**
> The programs (`make train`, `make sample`, `make microgpt`) run your own code, once the
> katas they need pass (`make status`). `REF=`, `IMPL=solutions`, `make check` and
> `make notebooks` need the full repository. Your work is graded with `make grade`
> ([docs/grading.md](docs/grading.md)).
"""

# What the hand-out has not got: a README paragraph (or a line of a code block) naming one of
# these is left out of the hand-out's README, where it could only mislead.
HANDOUT_LACKS = ("REF=", "IMPL=solutions", "solutions/")


def learners_readme(text: str) -> str:
    """The README as the hand-out has it: README_NOTE under the title; every paragraph that
    names what the hand-out lacks (HANDOUT_LACKS) left out, and such lines of code blocks;
    then a heading left with nothing under it."""
    title, _, rest = text.partition("\n")
    blocks: list[list[str]] = []  # paragraphs, and fenced code blocks whole
    fenced = False
    for line in rest.split("\n"):
        if fenced or line.strip():
            if not fenced and (not blocks or not blocks[-1]):
                blocks.append([])
            blocks[-1].append(line)
            if line.lstrip().startswith("```"):
                fenced = not fenced
        elif blocks and blocks[-1]:
            blocks.append([])
    kept = []
    for block in filter(None, blocks):
        if block[0].lstrip().startswith("```"):
            kept.append([line for line in block if not any(m in line for m in HANDOUT_LACKS)])
        elif not any(m in line for line in block for m in HANDOUT_LACKS):
            kept.append(block)

    def heading_level(block: list[str]) -> int:
        first = block[0]
        return len(first) - len(first.lstrip("#")) if len(block) == 1 and first[:1] == "#" else 0

    out = []
    for i, block in enumerate(kept):
        level = heading_level(block)
        following = kept[i + 1] if i + 1 < len(kept) else None
        if level and (following is None or 0 < heading_level(following) <= level):
            continue  # its section lost every paragraph
        out.append("\n".join(block))
    return f"{title}\n{README_NOTE}\n" + "\n\n".join(out) + "\n"


# When the repository is not a git work tree: what .gitignore keeps out of one.
UNTRACKED = {
    ".git",
    ".venv",
    "__pycache__",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "build",
    "grade",
    "runs",
    ".hints.json",
    ".status-cache.json",
    ".verified.json",
}


def repository_files(root: Path = ROOT) -> list[str]:
    """Every file of the repository a clone would have (tracked, or untracked and not ignored)."""
    listing = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
    )
    if listing.returncode == 0:
        names = {n for n in listing.stdout.decode().split("\0") if n}
    else:
        names = set()
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in UNTRACKED and not d.endswith(".egg-info")]
            for name in files:
                path = (Path(folder) / name).relative_to(root).as_posix()
                if (
                    name not in UNTRACKED
                    and not (path.startswith("data/") and name.endswith((".txt", ".part")))
                    and not name.endswith(".pyc")
                ):
                    names.add(path)
    return sorted(n for n in names if (root / n).is_file())


def handout_files(root: Path = ROOT) -> list[str]:
    def kept(path: str) -> bool:
        if path.startswith(LEFT_OUT_DIRS) or path in LEFT_OUT_FILES:
            return False
        return not path.startswith(".github/workflows/") or path in KEPT_WORKFLOWS

    return [p for p in repository_files(root) if kept(p)]


def build(dest: Path, root: Path = ROOT) -> list[str]:
    """Write the handout into dest (which must be empty or absent); return the files written."""
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"handout: {dest} is not empty; choose a new directory")
    manifest = load_manifest(root)
    problems, kata_problems = verify(root, manifest)
    problems += [p for ps in kata_problems.values() for p in ps]
    missing = [k.dirname for k in discover(root) if k.dirname not in manifest["katas"]]
    if problems or missing:
        raise SystemExit(
            "handout: harness/manifest.json is stale ("
            + "; ".join(problems + missing)
            + f"); run `{UPDATE_COMMAND}` first"
        )
    files = handout_files(root)
    for path in files:
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / path, dest / path)
    # The handout's own manifest: its files' hashes; the spec ids are this repository's (the
    # specs are the same files, and the handout has no solutions to collect them against).
    own = {
        "about": manifest["about"],
        "grader": {p: fetch.sha256_of(dest / p) for p in grader_files(dest)},
        "katas": {
            kata.dirname: kata_entry(dest, kata, manifest["katas"][kata.dirname]["specs"])
            for kata in discover(dest)
        },
    }
    readme = dest / "README.md"
    if readme.is_file():
        readme.write_text(learners_readme(readme.read_text()))
    write_json(dest / MANIFEST, own)
    write_json(dest / CLASSROOM, classroom_config(dest))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.handout", description=__doc__.split("\n")[0]
    )
    parser.add_argument("dest", type=Path, help="an empty or new directory")
    args = parser.parse_args(argv)
    files = build(args.dest.resolve())
    print(
        f"handout: {len(files)} files in {args.dest} (no solutions/). Next: cd {args.dest} && "
        "git init && git add -A && git commit -m 'gpt-katas', then push it as the template."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
