"""The harness: kata discovery, implementation selection, and the learner's loop end to end."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness import katas, status
from harness.checks import on_meta

ROOT = katas.ROOT


# --- discovery and selection ---


def test_parse_ref():
    assert katas.parse_ref("") == set()
    assert katas.parse_ref("01-07") == set(range(1, 8))
    assert katas.parse_ref("1,3, 5-6") == {1, 3, 5, 6}
    with pytest.raises(ValueError, match="REF=01-07"):
        katas.parse_ref("value")


def test_find_kata_by_number_or_name():
    first = katas.KATAS[0]
    for key in (first.number, f"{first.number:02d}", first.name, first.dirname):
        assert katas.find_kata(key) == first
    with pytest.raises(ValueError, match="the katas are: 01_value"):
        katas.find_kata("99")


def test_ref_takes_those_katas_from_solutions():
    dirs = katas.chosen_dirs("katas", "1")
    assert dirs[0] == ROOT / "solutions" / katas.KATAS[0].dirname
    assert all(d.parent == ROOT / "katas" for d in dirs[1:])
    assert all(d.parent == ROOT / "solutions" for d in katas.chosen_dirs("solutions"))
    with pytest.raises(ValueError, match="IMPL='mine'"):
        katas.chosen_dirs("mine")


# --- the ladder's structure: what every kata must have ---


@pytest.mark.parametrize("kata", katas.KATAS, ids=str)
def test_kata_is_complete(kata):
    assert (kata.path() / "README.md").is_file(), f"{kata}: no lesson README.md"
    hints = (kata.path() / "HINTS.md").read_text()
    assert hints.count("## Hint") >= 2, f"{kata}: HINTS.md needs '## Hint N' sections"
    assert kata.specs(), f"{kata}: no test_*.py spec"
    assert kata.modules(), f"{kata}: no stub module"
    for stub in kata.modules():
        solution = kata.path("solutions") / stub.name
        assert solution.is_file(), f"{stub} has no solution"
        given = stub.read_text() == solution.read_text()  # a module the kata gives whole
        assert given or "NotImplementedError" in stub.read_text(), f"{stub} is not a stub"
    assert any("NotImplementedError" in m.read_text() for m in kata.modules()), (
        f"{kata}: no module leaves anything to write"
    )


def test_module_names_are_unique_and_shadow_nothing():
    # Kata modules are imported by bare name, so two katas (or a kata and the standard
    # library) must never share one.
    seen: dict[str, str] = {}
    for kata in katas.KATAS:
        for path in kata.modules() + kata.specs():
            name = path.stem
            assert name not in seen, f"{path} and {seen[name]} share the module name {name!r}"
            assert name not in sys.stdlib_module_names, f"{path} shadows the stdlib's {name!r}"
            seen[name] = str(path)


def test_no_data_file_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    assert not [f for f in tracked.stdout.split() if f.endswith((".txt",)) and "data/" in f]


# --- the learner's loop, in a sandbox copy holding kata 01 only ---


@pytest.fixture
def sandbox(tmp_path) -> Path:
    first = katas.KATAS[0].dirname
    for name in ("harness", "data"):
        shutil.copytree(
            ROOT / name,
            tmp_path / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.txt", "*.part"),
        )
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for impl in ("katas", "solutions"):
        shutil.copytree(
            ROOT / impl / first,
            tmp_path / impl / first,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return tmp_path


def harness_cmd(sandbox: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=sandbox,
        capture_output=True,
        text=True,
        env={"PATH": "", "NO_COLOR": "1"},
    )


def start_writing(module: Path) -> None:
    """What a learner does first: put a line of their own into the module's first stub."""
    first = next(iter(status.bare_stubs(module).values()))
    lines = module.read_text().splitlines(keepends=True)
    raise_line = first.body[-1].lineno - 1
    indent = lines[raise_line][: len(lines[raise_line]) - len(lines[raise_line].lstrip())]
    lines.insert(raise_line, f"{indent}started = True  # noqa: F841\n")
    module.write_text("".join(lines))


def test_make_test_names_the_kata_the_spec_and_the_file(sandbox):
    start_writing(sandbox / "katas/01_value/value.py")
    proc = harness_cmd(sandbox, "test")
    assert proc.returncode == 1
    assert "01 value" in proc.stdout and "<- you are here" in proc.stdout
    assert "✗ test_worked_example" in proc.stdout
    assert "Edit:   katas/01_value/value.py" in proc.stdout


def test_a_failing_make_test_ends_saying_it_is_the_normal_unfinished_state(sandbox):
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "test"],
        cwd=sandbox,
        capture_output=True,
        text=True,
        env={"PATH": "", "NO_COLOR": "1", "MAKELEVEL": "1"},
    )
    assert proc.returncode == 1, "CI and instructors still see an unfinished ladder as 1"
    last = proc.stdout.strip().splitlines()[-1]
    assert "not a breakage" in last and "kata 01_value is next" in last, proc.stdout
    assert "Error 1" in last, "under make, it says make's error line comes next"
    assert "Error 1" not in harness_cmd(sandbox, "test").stdout  # not said outside make


def test_an_untouched_kata_shows_its_stub_message_once_without_running(sandbox):
    proc = harness_cmd(sandbox, "test")
    assert proc.returncode == 1 and "not started (16 functions to write)" in proc.stdout
    assert proc.stdout.count("Value.__init__: store data") == 1, proc.stdout
    assert "Failing test case" not in proc.stdout and "specs fail" not in proc.stdout
    assert not (sandbox / ".status-cache.json").exists()  # nothing ran, nothing to keep
    proc = harness_cmd(sandbox, "status")
    assert proc.returncode == 0, proc.stdout  # a report, not a verdict: no "make: *** Error"
    assert "0 of 1 katas done" in proc.stdout and "Next: kata 01_value" in proc.stdout


def test_status_reuses_results_until_a_file_the_specs_read_changes(sandbox):
    cache = sandbox / ".status-cache.json"
    solutions = ("--impl", "solutions", "status")
    first = harness_cmd(sandbox, *solutions).stdout
    counted = re.search(r"✓  01 value +(\d+)/\1\b", first)
    assert counted, f"kata 01 should pass on the solutions:\n{first}"
    n = int(counted.group(1))
    ((key, run),) = json.loads(cache.read_text()).items()
    run["records"][0]["outcome"] = "failed"  # mark the stored result: is it read back?
    cache.write_text(json.dumps({key: run}))
    assert f"✗  01 value        {n - 1}/{n}" in harness_cmd(sandbox, *solutions).stdout
    for changed in ("katas/01_value/test_value.py", "solutions/01_value/value.py"):
        path = sandbox / changed
        path.write_text(path.read_text() + "\n# an edit\n")
        proc = harness_cmd(sandbox, *solutions)
        assert f"✓  01 value        {n}/{n}" in proc.stdout, f"{changed} changed:\n{proc.stdout}"
        run["records"][0]["outcome"] = "failed"
        cache.write_text(json.dumps({k: run for k in json.loads(cache.read_text())}))


def test_a_kata_s_cache_key_covers_the_katas_it_imports_from_where_they_are_taken():
    attention = katas.find_kata("05")
    names = [
        p.relative_to(ROOT).as_posix()
        for p in status.spec_inputs(attention, katas.chosen_dirs("katas", "1"))
    ]
    assert {
        "katas/05_attention/test_attention.py",
        "katas/05_attention/attention.py",
        "katas/04_mlp/mlp.py",
        "solutions/01_value/value.py",
        "conftest.py",
    } <= set(names)
    assert "katas/01_value/value.py" not in names and "katas/06_block/block.py" not in names
    env = status.environment()
    assert status.cache_key(attention, katas.chosen_dirs("katas", "1"), env) != status.cache_key(
        attention, katas.chosen_dirs("katas", ""), env
    )


@pytest.mark.parametrize("kata", katas.KATAS, ids=str)
def test_the_recorded_stubs_are_the_handouts(kata):
    recorded = json.loads(status.STUBS.read_text()).get(kata.dirname)
    assert recorded == status.stubs_as_handed_out(kata.path()), (
        f"harness/stubs.json does not list what katas/{kata.dirname} leaves to write, so "
        f"`make status` cannot tell that kata's untouched stub: run "
        f"`python -m harness.status --record-stubs`"
    )


def test_a_solved_kata_is_reported_done(sandbox):
    shutil.copy(sandbox / "solutions/01_value/value.py", sandbox / "katas/01_value/value.py")
    proc = harness_cmd(sandbox, "test")
    assert proc.returncode == 0, proc.stdout
    assert "✓  01 value" in proc.stdout


def test_the_solutions_pass(sandbox):
    proc = harness_cmd(sandbox, "--impl", "solutions", "status")
    assert proc.returncode == 0 and "1 of 1 katas done" in proc.stdout, proc.stdout


def test_hints_come_one_more_at_a_time(sandbox):
    assert "Hint 1 of" in harness_cmd(sandbox, "hint", "01").stdout
    second = harness_cmd(sandbox, "hint", "1").stdout
    assert "Hint 2 of" in second and "Hint 3 of" not in second
    assert "Hint 2 of" not in harness_cmd(sandbox, "hint", "value", "--reset").stdout
    assert (sandbox / ".hints.json").exists()


def test_bad_kata_or_ref_is_a_clear_error(sandbox):
    proc = harness_cmd(sandbox, "kata", "42")
    assert proc.returncode == 2 and "no kata called '42'" in proc.stderr
    proc = harness_cmd(sandbox, "--ref", "all", "test")
    assert proc.returncode == 2 and "REF=01-07" in proc.stderr


def test_check_reports_a_spec_that_passes_on_the_stub_by_name(sandbox):
    spec = sandbox / "katas/01_value/test_value.py"
    spec.write_text(spec.read_text() + "\n\ndef test_that_asserts_nothing():\n    pass\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from harness.check import check_stubs; print('\\n'.join(check_stubs().problems))",
        ],
        cwd=sandbox,
        capture_output=True,
        text=True,
    )
    assert "test_value.py::test_that_asserts_nothing PASSED on the stub" in proc.stdout, (
        proc.stdout + proc.stderr
    )


def test_a_handout_without_solutions_says_why_the_reference_is_missing(sandbox):
    shutil.rmtree(sandbox / "solutions")
    for args in (("--impl", "solutions", "test"), ("--ref", "01", "status")):
        proc = harness_cmd(sandbox, *args)
        assert proc.returncode != 0 and "has no solutions/" in proc.stderr, proc.stderr


def test_programs_report_an_unwritten_kata_in_one_line(capsys):
    def main():
        raise NotImplementedError("encode: see katas/08_microgpt/README.md")

    assert katas.run_program(main) == 1
    err = capsys.readouterr().err
    assert "not written yet: encode" in err and "Traceback" not in err


def test_on_meta_fails_on_mixed_devices_and_skips_code_that_reads_values():
    meta = torch.zeros(2, device="meta")
    assert on_meta("adding", lambda: (meta + meta, None), hint="h")[1] is None
    with pytest.raises(AssertionError, match=r"(?s)raised RuntimeError.*hint: use x\.device"):
        on_meta("mixing", lambda: meta + torch.zeros(2), hint="use x.device")
    with pytest.raises(AssertionError, match=r"returned tensors on \['cpu'\]"):
        on_meta("a CPU result", lambda: torch.zeros(2), hint="h")
    with pytest.raises(AssertionError, match="make those pass first"):  # not about devices
        on_meta("a shape error", lambda: meta + torch.zeros(3, device="meta"), hint="h")

    def stub():
        raise NotImplementedError("stub")

    with pytest.raises(NotImplementedError, match="stub"):  # the harness reports stubs itself
        on_meta("a stub", stub, hint="h")
    with pytest.raises(pytest.skip.Exception, match="reads tensor values"):
        on_meta("reading", lambda: meta.sum().item(), hint="h")


def test_the_failures_of_pytest_raises_get_a_hint():
    import conftest

    def through_the_hook(err: BaseException) -> BaseException:
        call = conftest.pytest_runtest_call(None)
        next(call)
        try:
            call.throw(err)
        except BaseException as raised:  # noqa: BLE001 (what the hook raises is the answer)
            return raised
        raise AssertionError("the hook swallowed the failure")

    for failure in (
        pytest.fail.Exception("DID NOT RAISE ValueError"),
        AssertionError("Regex pattern did not match.\n  Expected regex: 'x'"),
    ):
        raised = through_the_hook(failure)
        assert isinstance(raised, AssertionError) and str(raised).startswith(str(failure)), raised
        assert "\n  hint: " in str(raised), raised
    other = AssertionError("expected 3, got 4\n  hint: add")
    assert through_the_hook(other) is other  # a spec's own failure already has its hint


# --- harness.checks: plain values only, and messages that tell close numbers apart ---------


def test_expect_close_accepts_every_plain_form():
    import numpy as np

    from harness.checks import expect_close

    class Value:  # kata 01's Value counts as its number
        def __init__(self, data):
            self.data = data

    for got in (
        3.0,
        3,
        np.float64(3.0),
        np.array([3.0]),
        torch.tensor(3.0),
        torch.nn.Parameter(torch.tensor([3.0])),
        [3.0],
        (3,),
        Value(3.0),
    ):
        expect_close(got, 3, f"{type(got).__name__}")
    expect_close(torch.Size([2, 3]), [2, 3], "a shape")


def test_expect_close_and_expect_refuse_what_is_not_plain():
    from harness.checks import NotPlain, expect, expect_close, plain

    class Anything:
        def __eq__(self, other):
            return True

        def tolist(self):
            return [42.0]

        def __float__(self):
            return 42.0

    class Fake(float):
        def __float__(self):
            return 42.0

    class Sly(torch.Tensor):
        pass

    sly = torch.Tensor._make_subclass(Sly, torch.tensor([42.0]))
    for bad in (Anything(), Fake(41.0), sly, [1.0, Fake(2.0)], {"a": Anything()}):
        with pytest.raises(NotPlain, match="plain values"):
            expect_close(bad, 42, "the answer")
        with pytest.raises(NotPlain, match="plain values"):
            plain(bad, "the answer")
    with pytest.raises(NotPlain, match="True or False was expected"):
        expect(Anything(), "a condition that decides for itself")
    expect(torch.tensor(True) and [1], "real tensors and lists decide as Python does")


def test_close_numbers_print_with_enough_digits_the_tolerance_and_the_element():
    from harness.checks import expect_close

    with pytest.raises(AssertionError) as caught:
        expect_close(
            -0.000183716000000275, -0.000183716, "the gradient", rel=1e-12, abs=0, hint="h"
        )
    message = str(caught.value)
    got, want = re.findall(r"got (-?[\d.e-]+), expected (-?[\d.e-]+)", message)[0]
    assert got != want, message  # the two numbers no longer print alike
    assert "relative 1.5e-12" in message and "allowed: relative 1e-12" in message, message
    with pytest.raises(AssertionError) as caught:
        expect_close([1.0, -1.68118, 5.0], [1.0, -1.68118 * (1 + 3e-6), 5.0], "logits")
    message = str(caught.value)
    assert "element 1 (flat index) of 3" in message and "relative 3e-06" in message, message
    assert "got -1.68118, expected -1.68119" in message, message


def test_the_learner_class_guard_refuses_forgeries_and_keeps_honest_classes(tmp_path):
    from harness.checks import NotPlain, expect, guard_learner_classes

    module = tmp_path / "forgery.py"
    module.write_text(
        "class Anything:\n    def __eq__(self, other):\n        return True\n\n\n"
        "class Honest:\n    def __init__(self, v):\n        self.v = v\n\n"
        "    def __eq__(self, other):\n"
        "        return isinstance(other, Honest) and other.v == self.v\n\n\n"
        "class Tokens(list):\n    pass\n\n\n"
        "def number():\n    class Number(int):\n        def __eq__(self, other):\n"
        "            return True\n    return Number(1)\n"
    )
    guard_learner_classes([module])
    sys.path.insert(0, str(tmp_path))
    try:
        import forgery
    finally:
        sys.path.remove(str(tmp_path))
    assert forgery.Honest(1) == forgery.Honest(1) and forgery.Honest(1) != forgery.Honest(2)
    assert forgery.Tokens([1, 2]) == [1, 2], "a plain subclass that changes nothing is fine"
    with pytest.raises(NotPlain, match="never seen"):
        expect(forgery.Anything() == [1, 2, 3], "encode")
    with pytest.raises(NotPlain, match="redefines __eq__"):
        forgery.number()
