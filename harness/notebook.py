"""The first cell of every lesson notebook: import the katas through the harness, and say so,
instead of showing a traceback, when a kata the notebook needs is not solved yet.

    from harness.notebook import start
    start("05")        # katas/05_attention/attention.ipynb

`interact` draws a figure that sliders steer, and stays a plain picture where no widget runs.

`start` imports from the same place as the specs: $GPT_KATAS_IMPL ("katas", your code, when
unset; "solutions" under `make notebooks`) with the katas in $GPT_KATAS_REF taken from the
reference. If a kata the notebook uses (or one that kata imports) still has a function whose
body raises NotImplementedError, it names those functions and the rest of the notebook is
skipped. Run the notebook again from the top once the kata passes: `start` forgets the kata
modules it imported before, so your latest edits are the ones that run.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

from harness.katas import IMPLS, KATAS, ROOT, Kata, find_kata, is_module, use

_skipping: list[bool] = [False]  # one flag, shared with the input transformer


def start(*katas: str | int, data: tuple[str, ...] = ()) -> None:
    """Import the chosen implementation of `katas` (and what they import); check they are solved.

    data: data files the notebook reads ("names.txt", "tinyshakespeare.txt").
    When one is missing or a kata is still a stub, prints why and skips the other cells.
    """
    impl = os.environ.get("GPT_KATAS_IMPL") or "katas"
    ref = os.environ.get("GPT_KATAS_REF", "")
    dirs = use(impl, ref)
    _drop_cwd_and_stale_modules()
    _style_plots()

    needed = needed_katas([find_kata(k) for k in katas], dirs)
    stubs = {kata: unsolved(kata, dirs) for kata in needed}
    stubs = {kata: files for kata, files in stubs.items() if files}
    missing = [name for name in data if not (ROOT / "data" / name).is_file()]

    where = "the reference solutions (solutions/)" if impl == "solutions" else "your code (katas/)"
    if ref:
        where += f", with katas {ref} from the reference"
    print(f"Using {where}: " + ", ".join(f"kata {k}" for k in needed) + ".")
    _skip_other_cells(bool(stubs or missing))
    if not (stubs or missing):
        return

    for kata, files in stubs.items():
        print(f"\nKata {kata} is not solved yet. Still to write:")
        for path, names in files.items():
            print(f"  {path.relative_to(ROOT)}: " + ", ".join(names))
    if stubs:
        first = min(stubs, key=lambda k: k.number)
        print(
            f"\nSolve it (`make kata K={first.number:02d}` until it passes), then run this "
            "notebook again from the top.\nThe copy of this notebook in the repository shows "
            "what the reference solution draws."
        )
    for name in missing:
        print(f"\ndata/{name} is missing: run `make data`, then run this notebook again.")
    print("\nThe other cells of this notebook are skipped.")


def needed_katas(katas: list[Kata], dirs: list[Path]) -> list[Kata]:
    """`katas` and every kata their modules import, directly or not, in ladder order."""
    by_module = {p.stem: kata for kata, d in zip(KATAS, dirs) for p in _modules(d)}
    needed: set[Kata] = set()
    todo = list(katas)
    while todo:
        kata = todo.pop()
        if kata in needed:
            continue
        needed.add(kata)
        for path in _modules(dirs[KATAS.index(kata)]):
            todo.extend(by_module[name] for name in _imported_names(path) if name in by_module)
    return sorted(needed, key=lambda k: k.number)


def unsolved(kata: Kata, dirs: list[Path] | None = None) -> dict[Path, list[str]]:
    """Per module file of a kata, its functions that still raise NotImplementedError (stubs)."""
    directory = dirs[KATAS.index(kata)] if dirs else kata.path()
    files = {}
    for path in _modules(directory):
        try:
            names = _stub_functions(ast.parse(path.read_text(), filename=str(path)))
        except SyntaxError as err:  # mid-edit: say where, rather than fail in the first cell
            names = [f"(a syntax error on line {err.lineno}: {err.msg})"]
        if names:
            files[path] = names
    return files


def interact(draw, **controls) -> None:
    """A figure you can steer: `controls` (ipywidgets: sliders, a text box) above the figure
    that `draw(**their values)` returns (a matplotlib Figure; draw does not show it).

    The figure for the controls' starting values is an ordinary picture in the cell's output,
    so the stored notebook, nbval and a code host show it. In Jupyter, with the kernel
    running, changing a control draws the figure again in its place.
    """
    import ipywidgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    def figure():
        fig = draw(**{name: control.value for name, control in controls.items()})
        plt.close(fig)  # shown once, through the display below, not again as the cell ends
        return fig

    display(ipywidgets.HBox(list(controls.values())))
    picture = display(figure(), display_id=True)
    for control in controls.values():
        control.observe(lambda _change: picture.update(figure()), names="value")


# --- helpers ---------------------------------------------------------------------------


def _modules(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.py") if is_module(p))


def _imported_names(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError:  # unsolved() reports it
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _raises_not_implemented(statement: ast.stmt) -> bool:
    if not isinstance(statement, ast.Raise) or statement.exc is None:
        return False
    exc = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def _stub_functions(tree: ast.Module, prefix: str = "") -> list[str]:
    """Functions (methods too, as Class.method) with a top-level `raise NotImplementedError`."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found.extend(_stub_functions(node, f"{prefix}{node.name}."))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(_raises_not_implemented(s) for s in node.body):
                found.append(f"{prefix}{node.name}")
    return found


def _drop_cwd_and_stale_modules() -> None:
    """After harness.katas.use (which puts the chosen kata directories first on sys.path):
    forget kata modules imported before, so that `import attention` loads the chosen file as
    it is now."""
    kata_dirs = {str(k.path(impl)) for k in KATAS for impl in IMPLS}
    # Jupyter starts the kernel in the notebook's directory, which holds the stubs: never
    # import from there by accident. (`use` already took that directory's own path off
    # sys.path, unless it is a chosen one.)
    if str(Path.cwd()) in kata_dirs:
        sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    module_names = {p.stem for k in KATAS for impl in IMPLS for p in _modules(k.path(impl))}
    for name in module_names & set(sys.modules):
        del sys.modules[name]


def _style_plots() -> None:
    """Small figures: a notebook stores its PNGs inline, and should stay small."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib is a dependency; a notebook without plots still runs
        return
    plt.rcParams.update(
        {
            "figure.figsize": (6.0, 3.0),
            "figure.dpi": 72,
            "savefig.dpi": 72,
            "font.size": 9,
            "axes.titlesize": 10,
        }
    )


def _skip_other_cells(skip: bool) -> None:
    """In Jupyter, turn every later cell into nothing while `skip` holds (until `start`
    runs again); outside Jupyter, stop the script."""
    _skipping[0] = skip
    shell = _ipython()
    if shell is None:
        if skip:
            raise SystemExit(1)
        return
    if _skip_cell not in shell.input_transformers_post:
        shell.input_transformers_post.append(_skip_cell)


def _ipython():
    """The running IPython shell (Jupyter's kernel), or None in plain Python."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _skip_cell(lines: list[str]) -> list[str]:
    """IPython input transformer: a cell's source becomes nothing while skipping; a cell that
    calls harness.notebook's `start` again still runs, so re-running it can end the skipping."""
    text = "".join(lines)
    if _skipping[0] and not ("harness.notebook" in text and "start(" in text):
        return []
    return lines
