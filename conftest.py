"""Pytest set-up shared by every spec: which implementation to import, hypothesis profiles,
one marker per kata, and the data files."""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import harness
from harness.data import fetch

settings.register_profile("dev", deadline=None, max_examples=50)
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=50,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


def pytest_addoption(parser):
    parser.addoption(
        "--impl",
        choices=harness.katas.IMPLS,
        default=os.environ.get("GPT_KATAS_IMPL", "katas"),
        help="run the specs against your code (katas, the default) or the reference (solutions)",
    )
    parser.addoption(
        "--ref",
        default=os.environ.get("GPT_KATAS_REF", ""),
        help="take these katas from solutions/ whatever --impl says, e.g. --ref 01-07",
    )


def pytest_configure(config):
    for kata in harness.katas.KATAS:  # one marker per kata directory: `pytest -m kata03`
        config.addinivalue_line("markers", f"{kata.marker}: kata {kata.number:02d} {kata.name}")
    impl, ref = config.getoption("--impl"), config.getoption("--ref")
    # Scripts and notebooks started from a spec see the same choice.
    os.environ["GPT_KATAS_IMPL"], os.environ["GPT_KATAS_REF"] = impl, ref
    harness.use(impl, ref)


def pytest_collection_modifyitems(items):
    for item in items:
        for part in Path(item.fspath).parts:
            number, _, name = part.partition("_")
            if number.isdigit() and len(number) == 2 and name:
                item.add_marker(f"kata{number}")
                break


RAISES_HINTS = {  # pytest.raises' own failures, which say what happened but not what to do
    "DID NOT RAISE": "the call inside this pytest.raises block gives your code an input that "
    "the docstring or the lesson calls an error: raise that error for it, with "
    "a message that names the bad value",
    "Regex pattern did not match": "the error was raised, but its message must contain the "
    "expected text: name the argument or value that is wrong",
}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Give pytest.raises' failures a hint, as every other failure in a spec has."""
    try:
        return (yield)
    except (pytest.fail.Exception, AssertionError) as err:
        message = str(err)
        hint = next((h for start, h in RAISES_HINTS.items() if message.startswith(start)), None)
        if hint is None:
            raise
        raise AssertionError(f"{message}\n  hint: {hint}").with_traceback(
            err.__traceback__
        ) from None


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Specs use tiny tensors: one thread is faster than several, and steadier on a busy
    machine. Only acts where the spec module already imported torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data_file(name: str) -> Path:
    try:
        return fetch.require(name)
    except fetch.DataError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def names_path() -> Path:
    """data/names.txt, 32,033 names; a clear failure that says `make data` when missing."""
    return _data_file("names.txt")


@pytest.fixture(scope="session")
def names(names_path) -> list[str]:
    return names_path.read_text().split()


@pytest.fixture(scope="session")
def shakespeare_path() -> Path:
    """data/tinyshakespeare.txt; a clear failure that says `make data` when missing."""
    return _data_file("tinyshakespeare.txt")


@pytest.fixture(scope="session")
def shakespeare(shakespeare_path) -> str:
    return shakespeare_path.read_text()
