"""Build the lesson notebooks from their sources, run them on the reference, store them.

    .venv/bin/python scripts/build_notebooks.py            # every notebook
    .venv/bin/python scripts/build_notebooks.py 05 11      # only these katas

A kata's notebook source is katas/NN_name/notebook.pct.py, a jupytext percent-format script
(`# %%` starts a code cell, `# %% [markdown]` a markdown cell of `# `-commented lines). Edit
it, never the .ipynb, and rebuild: tests/test_notebooks.py fails when they differ. jupytext
turns the source into katas/NN_name/<name>.ipynb; nbclient runs it in the kata's directory
with the reference solutions (GPT_KATAS_IMPL=solutions), as `make notebooks` (nbval) runs it;
it is written only if no cell raised. Cells whose first line is `# NBVAL_CHECK_OUTPUT` print
something deterministic that nbval compares with the stored output. Keep each notebook to
seconds of CPU and its figures small.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.katas import NOTEBOOK_SOURCE as SOURCE  # noqa: E402
from harness.katas import find_kata  # noqa: E402

MAX_BYTES = 300_000  # a stored notebook must stay small: its PNGs are inline base64
CELL_TIMEOUT = 120  # seconds; a lesson cell takes seconds
REFERENCE = {"GPT_KATAS_IMPL": "solutions", "GPT_KATAS_REF": ""}


def sources(root: Path = ROOT) -> list[Path]:
    """Every notebook source: katas/*/notebook.pct.py."""
    return sorted((root / "katas").glob(f"*/{SOURCE}"))


def notebook_path(source: Path) -> Path:
    """katas/05_attention/notebook.pct.py -> katas/05_attention/attention.ipynb."""
    return source.with_name(source.parent.name.partition("_")[2] + ".ipynb")


def read(source: Path) -> nbformat.NotebookNode:
    """The notebook a source describes, not run yet, with stable cell ids (cell-01, ...)."""
    nb = jupytext.read(source, fmt="py:percent")
    for number, cell in enumerate(nb.cells, 1):
        cell.id = f"cell-{number:02d}"
        cell.metadata = {}
    nb.metadata = {
        "kernelspec": {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        },
        "language_info": {"name": "python"},
    }
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path, env: dict[str, str]) -> str | None:
    """Run every code cell of nb in a fresh kernel started in cwd, with `env` added to this
    process's environment; store the outputs in nb. Returns the first error, or None."""
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        coalesce_streams=True,
        record_timing=False,
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(cwd)}},
    )
    # The kernel imports this repository's harness, whichever one the venv was installed from.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    try:
        client.execute(env={**os.environ, "PYTHONPATH": path, **env})
    except CellExecutionError as err:  # the cell's source and its traceback
        return str(err).strip()
    finally:
        nb.metadata["language_info"] = {"name": "python"}  # not this machine's Python version
    return None


def build(source: Path) -> bool:
    """Build, run and store one notebook; say how it went in one line."""
    target = notebook_path(source)
    name = target.relative_to(ROOT)
    nb = read(source)
    start = time.monotonic()
    error = execute(nb, source.parent, REFERENCE)
    seconds = time.monotonic() - start
    if error:
        print(f"✗ {name}: not written, a cell raised an error:\n{error}")
        return False
    text = nbformat.writes(nb) + "\n"
    target.write_text(text)
    size = len(text.encode())
    warning = f"  (over {MAX_BYTES:,} bytes: make the figures smaller)" if size > MAX_BYTES else ""
    print(f"✓ {name}: {seconds:.1f}s, {size / 1000:.0f} KB{warning}")
    return size <= MAX_BYTES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("katas", nargs="*", help="kata numbers or names (default: every notebook)")
    args = parser.parse_args(argv)
    try:
        wanted = {find_kata(key).dirname for key in args.katas}
    except ValueError as err:
        parser.exit(2, f"{err}\n")
    found = sources()
    chosen = [s for s in found if not wanted or s.parent.name in wanted]
    if len(chosen) < len(wanted) or not chosen:
        missing = sorted(wanted - {s.parent.name for s in chosen})
        print(
            f"no katas/<kata>/{SOURCE} for {', '.join(missing) or 'any kata'}; the notebooks "
            f"are: {', '.join(s.parent.name for s in found) or 'none'}"
        )
        return 2
    return 0 if all([build(source) for source in chosen]) else 1


if __name__ == "__main__":
    sys.exit(main())
