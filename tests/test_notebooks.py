"""The lesson notebooks: built from their sources, stored small and with outputs, importing the
katas through harness.notebook, and polite on a kata that is not solved yet.

That they run on the solutions with the stored outputs is `make notebooks` (nbval).
"""

from __future__ import annotations

import importlib.util
import json

import nbformat
import pytest

from harness.grader.trusted import spec_files
from harness.handout import handout_files
from harness.katas import KATAS, NOTEBOOK_SOURCE, ROOT, chosen_dirs, find_kata
from harness.notebook import needed_katas, unsolved

# Checked before jupytext is imported (by build_notebooks, below): it imports Jupyter's
# `notebook` package if there is one, and the kata directories on sys.path would hand it a
# kata's notebook.py instead, which runs that whole notebook.
SHADOWING = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("katas/*/notebook.py"))
if SHADOWING:
    pytest.fail(
        f"{', '.join(SHADOWING)}: a notebook source named notebook.py shadows "
        f"Jupyter's `notebook` package; rename it: git mv katas/NN_name/notebook.py "
        f"katas/NN_name/{NOTEBOOK_SOURCE}",
        pytrace=False,
    )

spec = importlib.util.spec_from_file_location(
    "build_notebooks", ROOT / "scripts" / "build_notebooks.py"
)
build_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_notebooks)

SOURCES = build_notebooks.sources()
NOTEBOOKS = [str(build_notebooks.notebook_path(s).relative_to(ROOT / "katas")) for s in SOURCES]
REBUILD = "rebuild it: .venv/bin/python scripts/build_notebooks.py NN"


def stored(path: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "katas" / path, as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_every_stored_notebook_has_a_source():
    on_disk = sorted(str(p.relative_to(ROOT / "katas")) for p in ROOT.glob("katas/*/*.ipynb"))
    assert on_disk == NOTEBOOKS, (
        f"every katas/NN_name/<name>.ipynb is built from katas/NN_name/{build_notebooks.SOURCE} "
        f"by scripts/build_notebooks.py: stored {on_disk}, sources for {NOTEBOOKS}. Build the "
        "missing notebook (.venv/bin/python scripts/build_notebooks.py NN), or delete the stray "
        "file"
    )


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_matches_its_source(path):
    source = ROOT / "katas" / path.split("/")[0] / build_notebooks.SOURCE
    want = [(c.cell_type, c.source) for c in build_notebooks.read(source).cells]
    got = [(c.cell_type, c.source) for c in stored(path).cells]
    assert got == want, (
        f"katas/{path} differs from its source {source.relative_to(ROOT)}; {REBUILD}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_is_small_and_stored_with_outputs(path):
    size = (ROOT / "katas" / path).stat().st_size
    assert size < build_notebooks.MAX_BYTES, (
        f"katas/{path} is {size:,} bytes: make its figures smaller (figsize, fewer points)"
    )
    cells = code_cells(stored(path))
    not_run = [c.id for c in cells if c.execution_count is None]
    assert not not_run, f"katas/{path}: cells {not_run} were never run; {REBUILD}"
    errors = [c.id for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, f"katas/{path}: cells {errors} stored an error; {REBUILD}"
    images = [o for c in cells for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"katas/{path} shows no figure: a notebook is here for its pictures"


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_starts_by_importing_through_the_harness(path):
    first = code_cells(stored(path))[0].source
    kata = path.split("/")[0]
    assert "from harness.notebook import start" in first and "start(" in first, (
        f"the first code cell of katas/{path} must call harness.notebook.start: it imports the "
        "learner's code (or the reference) and says when a kata is not solved yet"
    )
    assert f'"{kata[:2]}"' in first, f'katas/{path} must start("{kata[:2]}"), its own kata'


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_checked_cells_print_text_only(path):
    for cell in code_cells(stored(path)):
        if cell.source.startswith("# NBVAL_CHECK_OUTPUT"):
            kinds = {o.output_type for o in cell.outputs}
            assert kinds and kinds <= {"stream", "execute_result"}, (
                f"katas/{path} {cell.id}: a cell whose output nbval compares must print "
                f"deterministic text, got {sorted(kinds) or 'nothing'}"
            )
            text = json.dumps([o.get("data", {}).get("text/plain", "") for o in cell.outputs])
            assert "<Figure" not in text, f"katas/{path} {cell.id}: figure in a checked cell"


@pytest.mark.parametrize("kata", KATAS, ids=str)
def test_stub_and_solution_are_told_apart(kata):
    """A notebook stops politely only if harness.notebook sees the stub as unsolved."""
    assert unsolved(kata, chosen_dirs("katas")), (
        f"harness.notebook.unsolved finds no `raise NotImplementedError` in the stub of kata "
        f"{kata}: a learner's notebook would run the stub and crash"
    )
    assert not unsolved(kata, chosen_dirs("solutions")), (
        f"the solution of kata {kata} still has a function that raises NotImplementedError"
    )


def test_needed_katas_follow_the_imports():
    dirs = chosen_dirs("solutions")
    got = [k.number for k in needed_katas([find_kata("attention")], dirs)]
    assert got == [1, 4, 5], f"attention imports mlp and value: expected katas 1, 4, 5, got {got}"


def test_notebook_on_a_stub_says_so_instead_of_crashing():
    nb = build_notebooks.read(ROOT / "katas" / "02_tokenizer" / build_notebooks.SOURCE)
    error = build_notebooks.execute(
        nb, ROOT / "katas" / "02_tokenizer", {"GPT_KATAS_IMPL": "katas", "GPT_KATAS_REF": ""}
    )
    assert not error, f"on the stub, a cell raised {error}: the notebook must stop politely"
    first, *rest = code_cells(nb)
    said = "".join(o.get("text", "") for o in first.outputs)
    assert "not solved yet" in said and "make kata K=02" in said, said
    assert "tokenizer.py: CharTokenizer.__init__" in said, said
    ran = [c.id for c in rest if c.outputs]
    assert not ran, f"cells {ran} ran on the stub; every cell after start() must be skipped"


def test_a_kata_mid_edit_is_reported_not_crashed(tmp_path):
    kata = find_kata("tokenizer")
    (tmp_path / "tokenizer.py").write_text("def encode(text):\n    return [\n")
    dirs = chosen_dirs("solutions")
    dirs[KATAS.index(kata)] = tmp_path
    got = [name for names in unsolved(kata, dirs).values() for name in names]
    assert len(got) == 1 and got[0].startswith("(a syntax error on line 2"), got


def test_running_start_again_ends_the_skipping(tmp_path):
    """A learner solves the kata, then re-runs the notebook from the top in the same kernel."""
    source = tmp_path / build_notebooks.SOURCE
    source.write_text(
        "\n".join(
            [
                "# %%",
                "from harness.notebook import start",
                'start("02")',
                "# %%",
                'print("skipped")',
                "# %%",
                "import os",
                "import harness.notebook",
                'os.environ["GPT_KATAS_IMPL"] = "solutions"  # as if the kata were solved now',
                'harness.notebook.start("02")',
                "# %%",
                "from tokenizer import CharTokenizer",
                'print(CharTokenizer("ba").chars)',
            ]
        )
    )
    nb = build_notebooks.read(source)
    error = build_notebooks.execute(
        nb, ROOT / "katas" / "02_tokenizer", {"GPT_KATAS_IMPL": "katas", "GPT_KATAS_REF": ""}
    )
    assert not error, error
    said = ["".join(o.get("text", "") for o in cell.outputs) for cell in code_cells(nb)]
    assert "not solved yet" in said[0] and said[1] == "", said
    assert "not solved" not in said[2] and said[3] == "['a', 'b']\n", said


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.parent.name)
def test_the_notebook_source_is_neither_a_module_nor_a_spec_and_is_handed_out(source):
    kata = find_kata(source.parent.name)
    rel = source.relative_to(ROOT).as_posix()
    assert source not in kata.modules(), (
        f"{rel} counts as a learner's module: harness.katas.is_module must leave it out"
    )
    assert rel not in spec_files(ROOT, kata), (
        f"{rel} counts as a trusted spec file: learners may edit and rerun their notebook"
    )
    shipped = set(handout_files(ROOT))
    notebook = build_notebooks.notebook_path(source).relative_to(ROOT).as_posix()
    assert {rel, notebook} <= shipped, f"the handout must ship {rel} and {notebook}"


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_a_steerable_figure_is_stored_as_a_picture(path):
    """Where no widget frontend runs (nbval, a code host), the controls do nothing: the cell
    must still show its figure for the starting values."""
    for cell in code_cells(stored(path)):
        if "interact(" in cell.source:
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert len(images) == 1, (
                f"katas/{path} {cell.id}: a cell that calls interact stores one picture, the "
                f"figure for the controls' starting values; it has {len(images)}; {REBUILD}"
            )


def test_moving_a_control_redraws_the_figure_in_place(tmp_path):
    source = tmp_path / build_notebooks.SOURCE
    source.write_text(
        "\n".join(
            [
                "# %%",
                "import ipywidgets as widgets",
                "import matplotlib.pyplot as plt",
                "from harness.notebook import interact",
                "drawn = []",
                "def draw(n):",
                "    drawn.append(n)",
                "    fig, ax = plt.subplots()",
                "    ax.set_title(f'n = {n}')",
                "    return fig",
                "slider = widgets.IntSlider(value=1)",
                "interact(draw, n=slider)",
                "# %%",
                "slider.value = 2  # as a reader dragging the slider",
                "# %%",
                "print(drawn)",
            ]
        )
    )
    nb = build_notebooks.read(source)
    error = build_notebooks.execute(nb, tmp_path, {})
    assert not error, error
    figure, moved, said = code_cells(nb)
    images = [o for o in figure.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1 and not moved.outputs, (
        "interact must show one figure and replace it when a control moves, not add another: "
        f"{[o.output_type for o in figure.outputs]}, then {[o.output_type for o in moved.outputs]}"
    )
    assert said.outputs[0].text == "[1, 2]\n", f"draw ran for {said.outputs[0].text.strip()}"
