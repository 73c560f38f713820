"""Where the katas are, and which implementation of each one Python imports."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


def find_root() -> Path:
    """The repository: the one this package sits in (a clone, or an editable install), else,
    for a package installed from a wheel, the nearest directory at or above the current one
    that holds katas/ beside a conftest.py."""
    here = Path(__file__).resolve().parent.parent
    if (here / "katas").is_dir():
        return here
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "katas").is_dir() and (folder / "conftest.py").is_file():
            return folder
    return here


ROOT = find_root()
IMPLS = ("katas", "solutions")


@dataclass(frozen=True)
class Kata:
    number: int  # 1, 2, ... in ladder order
    name: str  # "value"

    @property
    def dirname(self) -> str:
        return f"{self.number:02d}_{self.name}"

    @property
    def marker(self) -> str:
        return f"kata{self.number:02d}"

    def path(self, impl: str = "katas") -> Path:
        return ROOT / impl / self.dirname

    def modules(self, impl: str = "katas") -> list[Path]:
        """The files a learner edits: every .py in the kata directory except specs."""
        return sorted(p for p in self.path(impl).glob("*.py") if is_module(p))

    def specs(self) -> list[Path]:
        return sorted(self.path("katas").glob("test_*.py"))

    def __str__(self) -> str:
        return self.dirname


# A kata's lesson notebook, as a jupytext percent-format script. Not "notebook.py": the kata
# directories are on sys.path, where that name would shadow Jupyter's `notebook` package.
NOTEBOOK_SOURCE = "notebook.pct.py"


def is_module(path: Path) -> bool:
    """A file the learner writes: a .py in a kata directory that is not a spec or the notebook."""
    return (
        path.suffix == ".py"
        and not path.name.startswith("test_")
        and path.name not in ("conftest.py", "__init__.py", NOTEBOOK_SOURCE)
    )


def discover(root: Path = ROOT) -> list[Kata]:
    """The katas under root/katas (this repository's, or any other tree's), in ladder order."""
    katas = []
    for d in sorted((root / "katas").iterdir()) if (root / "katas").is_dir() else []:
        number, _, name = d.name.partition("_")
        if d.is_dir() and number.isdigit() and name:
            katas.append(Kata(int(number), name))
    return katas


KATAS = tuple(discover())


def find_kata(key: str | int) -> Kata:
    """Look a kata up by number ("3", "03", 3) or name ("bigram", "03_bigram")."""
    text = str(key).strip()
    for kata in KATAS:
        if text in (str(kata.number), f"{kata.number:02d}", kata.name, kata.dirname):
            return kata
    known = ", ".join(k.dirname for k in KATAS)
    raise ValueError(f"no kata called {text!r}; the katas are: {known}")


def parse_ref(ref: str) -> set[int]:
    """Which katas to take from solutions/: "01-07", "3", "1,2,5-6" or "" for none."""
    numbers: set[int] = set()
    for part in ref.replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise ValueError(
                f"REF={ref!r} is not a list of kata numbers; write it like REF=01-07 or REF=1,3"
            ) from None
        numbers.update(range(lo, hi + 1))
    return numbers


def chosen_dirs(impl: str = "katas", ref: str = "") -> list[Path]:
    """The directory each kata is imported from, in ladder order."""
    if impl not in IMPLS:
        raise ValueError(f"IMPL={impl!r}: choose 'katas' (your code) or 'solutions' (reference)")
    from_ref = parse_ref(ref)
    if (impl == "solutions" or from_ref) and not (ROOT / "solutions").is_dir():
        raise SystemExit(
            "This copy of gpt-katas has no solutions/ (it is a learners' hand-out), so "
            "IMPL=solutions and REF= cannot be used. Run your own code with IMPL=katas "
            "(for example `make train IMPL=katas`) once the katas it needs pass (`make status`)."
        )
    return [k.path("solutions" if k.number in from_ref else impl) for k in KATAS]


def use(impl: str | None = None, ref: str | None = None) -> list[Path]:
    """Make `import <kata module>` load the chosen implementation.

    impl: "katas" (the learner's code) or "solutions"; defaults to $GPT_KATAS_IMPL or "katas".
    ref: katas taken from solutions/ whatever impl says, e.g. "01-07"; defaults to $GPT_KATAS_REF.
    """
    impl = impl or os.environ.get("GPT_KATAS_IMPL", "katas")
    ref = ref if ref is not None else os.environ.get("GPT_KATAS_REF", "")
    dirs = chosen_dirs(impl, ref)
    every_kata_dir = {str(k.path(i)) for k in KATAS for i in IMPLS}
    sys.path[:] = [p for p in sys.path if p not in every_kata_dir]
    sys.path[:0] = [str(d) for d in dirs]
    return dirs


def program_impl() -> str:
    """What programs built from the katas (train, sample, microgpt, benchmarks) run:
    $GPT_KATAS_IMPL if set, else the reference, or the learner's own katas in a hand-out
    that has no solutions/."""
    default = "solutions" if (ROOT / "solutions").is_dir() else "katas"
    return os.environ.get("GPT_KATAS_IMPL", default)


def results_dir(quick: bool = False) -> Path:
    """Where a benchmark writes its figures: bench/results/ (the measured figures the README
    quotes) only when a maintainer records a full run (`make bench RECORD=1`, which sets
    $GPT_KATAS_RECORD=1); runs/bench/ otherwise, so a smoke test or a user's run never
    replaces them."""
    if os.environ.get("GPT_KATAS_RECORD") == "1" and not quick:
        return ROOT / "bench" / "results"
    return ROOT / "runs" / "bench"


def run_program(main) -> int:
    """Run a program built from the katas (train, sample, microgpt): a kata that is not
    written yet is reported in one line, not as a traceback."""
    try:
        return main()
    except NotImplementedError as err:
        reference = "; IMPL=solutions runs the reference" if (ROOT / "solutions").is_dir() else ""
        print(
            f"\nerror: a kata this program uses is not written yet: {err}\n"
            f"`make status` shows which katas pass{reference}.",
            file=sys.stderr,
        )
        return 1
