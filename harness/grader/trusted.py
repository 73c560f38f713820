"""The trusted files: which they are, their manifest, and one checked copy of them in memory.

The grader reads every trusted file once, before any learner code runs, checks it against
harness/manifest.json and keeps its bytes (`Trusted`). Every kata's run gets fresh, read-only
copies written from those bytes, so nothing a kata does to files can change what a later kata
(or a restart of the same kata) is graded with.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.katas import NOTEBOOK_SOURCE, Kata, is_module

MANIFEST = Path("harness/manifest.json")
POINTS = Path("harness/points.json")
CLASSROOM = Path(".github/classroom/autograding.json")
HIDDEN_MANIFEST = "manifest.json"
UPDATE_COMMAND = "python -m harness.grade --update-manifest"


class GradeError(Exception):
    """Grading could not start: bad arguments, a missing directory, no manifest."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def kata_of(dirname: str) -> Kata:
    number, _, name = dirname.partition("_")
    return Kata(int(number), name)


def spec_files(root: Path, kata: Kata) -> list[str]:
    """The trusted files of a kata: its specs and anything they read, but not the learner's
    modules, the lesson (*.md) or the notebook (its source and *.ipynb), which learners may
    edit and run."""
    d = root / "katas" / kata.dirname
    return sorted(
        p.relative_to(root).as_posix()
        for p in d.iterdir()
        if p.is_file()
        and not is_module(p)
        and p.name != NOTEBOOK_SOURCE
        and p.suffix not in (".md", ".ipynb", ".pyc")
    )


def declared_modules(root: Path, kata: Kata) -> list[str]:
    """The module files a kata asks the learner to write (its stubs' names): the only files
    the grader takes from a learner's kata directory."""
    d = root / "katas" / kata.dirname
    return sorted(p.name for p in d.glob("*.py") if is_module(p))


def grader_files(root: Path) -> list[str]:
    """The trusted files besides the specs: the fixtures, the whole harness (the grader
    included), the data step, the points."""
    paths = [
        root / "conftest.py",
        root / POINTS,
        *(root / "harness").glob("*.py"),
        *(root / "harness" / "grader").glob("*.py"),
        *(root / "harness" / "data").glob("*.py"),
    ]
    return sorted(p.relative_to(root).as_posix() for p in paths if p.is_file())


def load_manifest(root: Path) -> dict:
    if not (root / MANIFEST).is_file():
        raise GradeError(f"{root / MANIFEST} is missing; a maintainer runs `{UPDATE_COMMAND}`")
    manifest = json.loads((root / MANIFEST).read_text())
    if "modules" not in next(iter(manifest.get("katas", {}).values()), {"modules": []}):
        raise GradeError(f"{root / MANIFEST} is from an older grader; run `{UPDATE_COMMAND}`")
    return manifest


def _read_checked(root: Path, paths: dict[str, str], into: dict[str, bytes]) -> list[str]:
    """Read each file once into `into`; return what differs from its sha256."""
    problems = []
    for path, digest in paths.items():
        try:
            data = (root / path).read_bytes()
        except OSError:
            problems.append(f"{path} is missing")
            continue
        if sha256(data) != digest:
            problems.append(f"{path} was changed")
        into[path] = data
    return problems


def verify(root: Path, manifest: dict) -> tuple[list[str], dict[str, list[str]]]:
    """Problems with the grader's files, and with each kata's spec files, against the manifest."""
    scratch: dict[str, bytes] = {}
    return (
        _read_checked(root, manifest["grader"], scratch),
        {d: _read_checked(root, e["files"], scratch) for d, e in manifest["katas"].items()},
    )


def number(x: float) -> float | int:
    """10.0 -> 10 (JSON readers such as Classroom expect whole points as integers)."""
    return int(x) if float(x).is_integer() else round(float(x), 2)


@dataclass
class Points:
    default: float
    katas: dict[str, float]
    hidden_weight: float

    def of(self, kata: Kata) -> float | int:
        return number(self.katas.get(kata.dirname, self.default))


def parse_points(text: str | bytes) -> Points:
    data = json.loads(text)
    return Points(data.get("default", 10), data.get("katas", {}), data.get("hidden_weight", 1))


def load_points(root: Path) -> Points:
    return parse_points((root / POINTS).read_text())


@dataclass
class Trusted:
    """Every trusted file's bytes, read once and checked: what each kata's run is built from."""

    root: Path
    manifest: dict
    files: dict[str, bytes]  # path -> bytes, the grader's files and every kata's specs
    grader_problems: list[str]
    kata_problems: dict[str, list[str]]
    hidden: dict[str, bytes] = field(default_factory=dict)  # "NN_name/test_x.py" -> bytes
    hidden_ids: list[str] | None = None  # from the hidden manifest; None: there is none

    @property
    def points(self) -> Points:
        return parse_points(self.files[POINTS.as_posix()])

    @property
    def digest(self) -> str:
        return sha256(json.dumps(self.manifest, sort_keys=True).encode())

    def katas(self) -> list[Kata]:
        return sorted((kata_of(d) for d in self.manifest["katas"]), key=lambda k: k.number)

    def modules(self, kata: Kata) -> list[str]:
        return self.manifest["katas"].get(kata.dirname, {}).get("modules", [])


def load_trusted(root: Path, hidden: Path | None = None) -> Trusted:
    """Read and check the trusted tree at `root` (and the hidden specs in `hidden`)."""
    manifest = load_manifest(root)
    files: dict[str, bytes] = {}
    grader = _read_checked(root, manifest["grader"], files)
    katas = {d: _read_checked(root, e["files"], files) for d, e in manifest["katas"].items()}
    trusted = Trusted(root, manifest, files, grader, katas)
    if hidden is None:
        return trusted
    if not hidden.is_dir():
        raise GradeError(f"HIDDEN_SPECS={hidden}: no such directory")
    if (hidden / HIDDEN_MANIFEST).is_file():
        own = json.loads((hidden / HIDDEN_MANIFEST).read_text())
        changed = _read_checked(hidden, own["files"], trusted.hidden)
        if changed:
            raise GradeError(
                f"the hidden specs differ from {hidden / HIDDEN_MANIFEST}: "
                f"{', '.join(changed)}; rerun `{UPDATE_COMMAND} --hidden-specs DIR`"
            )
        trusted.hidden_ids = list(own["specs"])
    else:
        for d in sorted(hidden.iterdir()):
            if d.is_dir() and d.name[:2].isdigit():
                for f in sorted(d.iterdir()):
                    if f.is_file():
                        trusted.hidden[f"{d.name}/{f.name}"] = f.read_bytes()
    return trusted


def trusted_tree(repo: Path, ref: str, into: Path) -> Path:
    """The files of git `ref` of `repo`, extracted into `into`/trusted."""
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", ref], capture_output=True
    )
    if archive.returncode != 0:
        raise GradeError(f"--trusted-ref {ref}: {archive.stderr.decode().strip()}")
    tree = into / "trusted"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree
