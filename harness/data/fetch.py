"""Fetch the two data files, from their canonical URLs or a local mirror, and verify them.

    python -m harness.data                      # download what is missing
    python -m harness.data --mirror DIR         # copy from DIR instead (offline, CI)

A file is only ever put in place after its sha256 matched, so a half-downloaded or corrupt
file never stays where the katas read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness.katas import ROOT

DATA_DIR = ROOT / "data"  # beside the katas, also when this package is installed from a wheel


@dataclass(frozen=True)
class DataFile:
    name: str
    url: str
    sha256: str
    size: int


FILES = {
    f.name: f
    for f in (
        DataFile(
            "names.txt",
            "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
            "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
            228_145,
        ),
        DataFile(
            "tinyshakespeare.txt",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            1_115_394,
        ),
    )
}

HOW_TO_FIX = (
    "Run `make data` to download it, or `make data DATA_MIRROR=dir` to copy it from a "
    "directory that holds the file."
)


class DataError(RuntimeError):
    """A data file is missing, corrupt, or could not be fetched."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require(name: str, data_dir: Path = DATA_DIR) -> Path:
    """The path of a data file that is present; a DataError that says how to get it otherwise.

    Only the size is checked here (cheap, done on every spec run); `fetch` checks the sha256.
    """
    spec = FILES[name]
    path = data_dir / name
    if not path.exists():
        raise DataError(f"{path} is missing. {HOW_TO_FIX}")
    if path.stat().st_size != spec.size:
        raise DataError(
            f"{path} has {path.stat().st_size:,} bytes, expected {spec.size:,}: it is not the "
            f"published file. Delete it, then: {HOW_TO_FIX}"
        )
    return path


def verified(name: str, data_dir: Path = DATA_DIR) -> Path:
    """The path of a data file whose sha256 is the published one; a DataError otherwise.

    The verdict is kept in data_dir/.verified.json by the file's size and modification time,
    so only a new or changed file is hashed again (for the programs that train on it).
    """
    path = require(name, data_dir)
    stat = path.stat()
    seen_file = data_dir / ".verified.json"
    try:
        seen = json.loads(seen_file.read_text())
    except (OSError, ValueError):
        seen = {}
    stamp = [stat.st_size, stat.st_mtime_ns, FILES[name].sha256]
    if seen.get(name) == stamp:
        return path
    got = sha256_of(path)
    if got != FILES[name].sha256:
        raise DataError(
            f"{path} is corrupt or edited: its sha256 is {got}, expected "
            f"{FILES[name].sha256}. Delete it, then: {HOW_TO_FIX}"
        )
    seen[name] = stamp
    try:
        seen_file.write_text(json.dumps(seen))
    except OSError:
        pass  # a read-only data directory: hash again next time
    return path


def _verify_and_place(spec: DataFile, tmp: Path, dest: Path, source: str) -> None:
    got = sha256_of(tmp)
    if got != spec.sha256:
        tmp.unlink()
        raise DataError(
            f"{spec.name} from {source} has sha256 {got}, expected {spec.sha256}. "
            "The file is corrupt or a different version; nothing was written. "
            "Replace the source file with the published one (URL in harness/data/fetch.py)."
        )
    os.replace(tmp, dest)  # atomic: the file appears whole or not at all


def fetch_one(
    name: str,
    data_dir: Path = DATA_DIR,
    mirror: Path | None = None,
    url: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Put a verified copy of `name` in data_dir; return its path. Does nothing if it is there."""
    spec = FILES[name]
    dest = data_dir / name
    if dest.exists() and sha256_of(dest) == spec.sha256:
        return dest
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (name + ".part")
    try:
        if mirror is not None:
            source = Path(mirror) / name
            if not source.is_file():
                raise DataError(
                    f"the mirror directory {Path(mirror).resolve()} has no {name}. "
                    "Point DATA_MIRROR at a directory that holds it, or leave DATA_MIRROR "
                    "unset to download it."
                )
            shutil.copyfile(source, tmp)
            _verify_and_place(spec, tmp, dest, str(source))
        else:
            source = url or spec.url
            try:
                with (
                    urllib.request.urlopen(source, timeout=timeout) as response,
                    open(tmp, "wb") as out,
                ):
                    shutil.copyfileobj(response, out)
            except (urllib.error.URLError, OSError) as err:
                what = f"could not download {name} from {source}: {err}"
                if dest.exists():  # the real problem is the local copy, not the network
                    what = (
                        f"{dest} is corrupt or edited (its sha256 is not the published "
                        f"one), and a fresh copy could not be downloaded ({err})"
                    )
                raise DataError(
                    f"{what}. Check your network, or copy it from a directory that holds "
                    f"it: make data DATA_MIRROR=dir"
                ) from err
            _verify_and_place(spec, tmp, dest, source)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def fetch_all(data_dir: Path = DATA_DIR, mirror: Path | None = None) -> list[Path]:
    return [fetch_one(name, data_dir, mirror) for name in FILES]
