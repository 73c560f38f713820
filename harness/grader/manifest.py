"""Writing harness/manifest.json, a hidden-spec manifest, and the Classroom config
(maintainers: `python -m harness.grade --update-manifest`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.data import fetch
from harness.grader.run import Setup, data_files, run_pytest
from harness.grader.sandbox import Limits, Sandbox
from harness.grader.trusted import (
    CLASSROOM,
    HIDDEN_MANIFEST,
    MANIFEST,
    UPDATE_COMMAND,
    GradeError,
    Trusted,
    declared_modules,
    grader_files,
    kata_of,
    load_points,
    spec_files,
)
from harness.katas import ROOT, Kata, discover


def _unchecked(root: Path, hidden: Path | None) -> Trusted:
    """The trusted files of `root` as they are (for collecting their spec ids)."""
    katas = discover(root)
    manifest = {
        "grader": {p: "" for p in grader_files(root)},
        "katas": {
            k.dirname: {
                "files": {p: "" for p in spec_files(root, k)},
                "modules": declared_modules(root, k),
            }
            for k in katas
        },
    }
    paths = [*manifest["grader"], *(p for e in manifest["katas"].values() for p in e["files"])]
    trusted = Trusted(root, manifest, {p: (root / p).read_bytes() for p in paths}, [], {})
    for d in sorted(hidden.iterdir()) if hidden else []:
        if d.is_dir() and d.name[:2].isdigit():
            trusted.hidden.update(
                {f"{d.name}/{f.name}": f.read_bytes() for f in sorted(d.iterdir()) if f.is_file()}
            )
    return trusted


def collect_ids(
    root: Path, impl: str, katas: list[Kata], hidden: Path | None = None, public: bool = True
) -> list[str]:
    """The spec ids of `katas` (collect only, against `impl`), for the manifest."""
    trusted = _unchecked(root, hidden)
    setup = Setup(
        trusted,
        root,
        impl,
        Limits(test_timeout=120),
        Sandbox("none", "collecting"),
        data=data_files(root),
    )
    attempt = run_pytest(setup, katas, [], time.monotonic() + 600, public=public, collect_only=True)
    if attempt.import_errors or attempt.collected is None:
        problems = "\n".join(
            e.get("longrepr") or e.get("message", "") for e in attempt.import_errors
        )
        raise GradeError(
            f"collecting the specs against {impl}/ failed:\n{problems or attempt.output}"
        )
    if hidden is not None:  # ids relative to the hidden directory, as its manifest keeps them
        return [i.removeprefix("hidden/") for i in attempt.collected if i.startswith("hidden/")]
    return attempt.collected


def build_manifest(root: Path = ROOT) -> dict:
    """What `--update-manifest` writes: every trusted file's sha256, every kata's declared
    modules, and every spec's id, collected against solutions/."""
    katas = discover(root)
    ids = collect_ids(root, "solutions", katas)
    return {
        "about": f"sha256 of every file `make grade` trusts, each kata's modules, and every "
        f"spec id; regenerate with `{UPDATE_COMMAND}`",
        "grader": {path: fetch.sha256_of(root / path) for path in grader_files(root)},
        "katas": {
            kata.dirname: kata_entry(
                root, kata, [i for i in ids if i.startswith(f"katas/{kata.dirname}/")]
            )
            for kata in katas
        },
    }


def kata_entry(root: Path, kata: Kata, specs: list[str]) -> dict:
    return {
        "files": {p: fetch.sha256_of(root / p) for p in spec_files(root, kata)},
        "modules": declared_modules(root, kata),
        "specs": specs,
    }


def build_hidden_manifest(root: Path, hidden: Path) -> dict:
    katas = [
        kata_of(d.name) for d in sorted(hidden.iterdir()) if d.is_dir() and d.name[:2].isdigit()
    ]
    ids = collect_ids(root, "solutions", katas, hidden=hidden, public=False)
    return {
        "about": "the hidden specs' sha256 and ids; regenerate with "
        f"`{UPDATE_COMMAND} --hidden-specs DIR`",
        "files": {
            p.relative_to(hidden).as_posix(): fetch.sha256_of(p)
            for k in katas
            for p in sorted((hidden / k.dirname).iterdir())
            if p.is_file()
        },
        "specs": ids,
    }


# Classroom's set-up command: CPU-only torch first (PyPI's Linux build pulls CUDA), at the
# constraints.txt's pin, then the rest; idempotent, so after the first test it costs seconds.
CLASSROOM_SETUP = (
    "test -x .venv/bin/python || python3 -m venv .venv && .venv/bin/python -m pip "
    "install -q --index-url https://download.pytorch.org/whl/cpu "
    "\"$(grep '^torch==' constraints.txt)\" && make setup data"
)


def classroom_config(root: Path = ROOT) -> dict:
    """.github/classroom/autograding.json: one all-or-nothing test per kata (partial credit is
    in grade/results.json)."""
    points = load_points(root)
    return {
        "tests": [
            {
                "name": f"kata {kata.dirname}",
                "setup": CLASSROOM_SETUP,
                "run": f"make grade K={kata.number:02d} STRICT=1",
                "input": "",
                "output": "",
                "comparison": "included",
                "timeout": 20,
                "points": points.of(kata),
            }
            for kata in discover(root)
        ]
    }


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def update_manifest(root: Path = ROOT, hidden: Path | None = None) -> list[Path]:
    if hidden is not None:
        write_json(hidden / HIDDEN_MANIFEST, build_hidden_manifest(root, hidden))
        return [hidden / HIDDEN_MANIFEST]
    write_json(root / MANIFEST, build_manifest(root))
    write_json(root / CLASSROOM, classroom_config(root))
    return [root / MANIFEST, root / CLASSROOM]
