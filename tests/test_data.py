"""The data step: mirror copies, downloads from a local HTTP server, and every way it can fail."""

import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.data import fetch

ROOT = Path(__file__).resolve().parent.parent
NAMES = fetch.FILES["names.txt"]


@pytest.fixture(scope="module")
def good_mirror(tmp_path_factory, names_path, shakespeare_path) -> Path:
    """A directory holding verified copies of both files (from the repository's data step)."""
    mirror = tmp_path_factory.mktemp("mirror")
    for path in (names_path, shakespeare_path):
        (mirror / path.name).write_bytes(path.read_bytes())
    return mirror


def test_mirror_copy_is_verified_and_placed(good_mirror, tmp_path):
    paths = fetch.fetch_all(data_dir=tmp_path, mirror=good_mirror)
    assert [p.name for p in paths] == list(fetch.FILES)
    for p in paths:
        assert fetch.sha256_of(p) == fetch.FILES[p.name].sha256
    assert not list(tmp_path.glob("*.part"))


def test_present_file_is_not_fetched_again(good_mirror, tmp_path):
    fetch.fetch_one("names.txt", tmp_path, good_mirror)
    empty = tmp_path / "empty"
    empty.mkdir()
    # The mirror no longer has it, but nothing needs copying: no error.
    assert fetch.fetch_one("names.txt", tmp_path, empty) == tmp_path / "names.txt"


def test_corrupt_mirror_file_is_rejected_and_nothing_is_left(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "names.txt").write_text("emma\nolivia\n")
    dest = tmp_path / "data"
    with pytest.raises(fetch.DataError) as info:
        fetch.fetch_one("names.txt", dest, mirror)
    message = str(info.value)
    assert "names.txt" in message and NAMES.sha256 in message
    assert list(dest.iterdir()) == []  # no half file, no .part


def test_missing_mirror_file_says_which_and_how_to_fix(tmp_path):
    with pytest.raises(fetch.DataError) as info:
        fetch.fetch_one("tinyshakespeare.txt", tmp_path / "data", tmp_path)
    message = str(info.value)
    assert "tinyshakespeare.txt" in message and "DATA_MIRROR" in message


def test_require_says_run_make_data(tmp_path):
    with pytest.raises(fetch.DataError, match="make data"):
        fetch.require("names.txt", tmp_path)
    (tmp_path / "names.txt").write_text("truncated")
    with pytest.raises(fetch.DataError, match="expected 228,145"):
        fetch.require("names.txt", tmp_path)


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        # /truncated promises the whole file, sends a third of it, and hangs up.
        promised = len(body) * (3 if self.path == "/truncated" else 1)
        self.send_response(200)
        self.send_header("Content-Length", str(promised))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(names_path):
    """An HTTP server on 127.0.0.1 serving a good, a corrupt and a truncated names.txt."""
    good = names_path.read_bytes()
    _Handler.routes = {
        "/names.txt": good,
        "/corrupt.txt": b"X" + good[1:],
        "/truncated": good[: len(good) // 3],
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_is_verified_and_placed(server, tmp_path):
    path = fetch.fetch_one("names.txt", tmp_path, url=f"{server}/names.txt")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == NAMES.sha256


@pytest.mark.parametrize("route", ["/corrupt.txt", "/truncated", "/missing"])
def test_bad_download_is_a_clear_error_and_leaves_nothing(server, tmp_path, route):
    with pytest.raises(fetch.DataError) as info:
        fetch.fetch_one("names.txt", tmp_path, url=f"{server}{route}", timeout=5)
    assert "names.txt" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_no_network_is_a_clear_error(tmp_path):
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(fetch.DataError, match="could not download names.txt"):
        fetch.fetch_one("names.txt", tmp_path, url="http://127.0.0.1:9/names.txt", timeout=5)


def test_command_line_fails_with_the_reason(tmp_path):
    # A copy of the harness in an empty directory: its root, and so its data/, holds no files.
    shutil.copytree(
        ROOT / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__")
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.data", "--mirror", str(empty)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "data step failed" in proc.stderr and "has no names.txt" in proc.stderr


def test_verified_rejects_a_same_size_edit_and_remembers_a_good_file(
    good_mirror, tmp_path, monkeypatch
):
    path = fetch.fetch_one("names.txt", tmp_path, good_mirror)
    assert fetch.verified("names.txt", tmp_path) == path
    hashed = []
    monkeypatch.setattr(fetch, "sha256_of", lambda p: hashed.append(p) or NAMES.sha256)
    assert fetch.verified("names.txt", tmp_path) == path and hashed == []  # remembered
    monkeypatch.undo()
    edited = path.read_bytes()
    stamp = path.stat().st_mtime_ns
    path.write_bytes(b"E" + edited[1:])  # the same size: a size check alone would pass it
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # an edit a second later, on any clock
    with pytest.raises(fetch.DataError) as info:
        fetch.verified("names.txt", tmp_path)
    assert "corrupt or edited" in str(info.value) and "make data" in str(info.value)


def test_offline_a_corrupt_local_file_is_reported_as_corrupt(good_mirror, tmp_path):
    path = fetch.fetch_one("names.txt", tmp_path, good_mirror)
    path.write_bytes(b"E" + path.read_bytes()[1:])
    with pytest.raises(fetch.DataError) as info:
        fetch.fetch_one("names.txt", tmp_path, url="http://127.0.0.1:9/names.txt", timeout=5)
    message = str(info.value)
    assert message.startswith(f"{path} is corrupt or edited") and "DATA_MIRROR" in message
