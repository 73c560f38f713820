"""Where learner code runs: in a bubblewrap sandbox where one can be made, else plainly.

The sandbox (bwrap, https://github.com/containers/bubblewrap) sees a read-only system and
Python, the kata's box read-only at /grade, and its own /tmp (a size-capped tmpfs) as scratch.
It has no network, its own PID namespace (the grader's /proc is not visible, and every process
it starts is killed when it ends), no $HOME, no other kata's specs, an unprivileged uid, and
limits on address space, CPU time, file size and (as root) processes.

As root (this project's CI), bwrap starts without a user namespace and `setpriv` drops to a
uid of its own for each sandbox running at once, so RLIMIT_NPROC caps that sandbox alone.
Each grader running on the host takes a range of uids of its own first (claim_uids: a lock
file per range, held while the grader runs and freed by the system when it ends, even by
kill -9), so two graders at once never share a uid or a process budget. As
another user, bwrap needs unprivileged user namespaces (Ubuntu 24.04 restricts them through
AppArmor: docs/grading.md says what to do); uid 65534 is then mapped onto the caller's uid.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

FIRST_UID = 61000  # sandbox n of range r runs as FIRST_UID + r * UID_RANGE + n (as root)
UID_RANGE = 256  # uids of one grader: at most this many sandboxes at once
UID_RANGES = 64  # graders at once on one host
UID_LOCKS = "gpt-katas-grader-uids"  # in the system's temporary directory
BOX = "/grade"  # where the box appears inside the sandbox

# Runs first in the sandbox's Python: resource limits on itself (inherited by everything it
# starts, and not raisable again), then pytest.
LAUNCHER = """import resource, runpy, sys
memory, cpu, fsize, nproc = (int(a) for a in sys.argv[1:5])
for what, limit in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu),
                    (resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_NPROC, nproc),
                    (resource.RLIMIT_CORE, 0)):
    if limit >= 0:
        resource.setrlimit(what, (limit, limit))
sys.argv = ["pytest", *sys.argv[5:]]
runpy.run_module("pytest", run_name="__main__", alter_sys=True)
"""


@dataclass
class Limits:
    test_timeout: float = 60.0  # seconds a spec may run
    kata_timeout: float = 600.0  # seconds all of a kata's runs may take together
    memory: int = 4 << 30  # bytes of address space for a kata's process
    file_size: int = 1 << 30  # largest file a kata's process may write
    processes: int = 256  # processes and threads of one sandbox (as root only)
    scratch: int = 1 << 30  # bytes of the sandbox's /tmp


@dataclass
class Sandbox:
    """How a kata's pytest is started. kind: "bwrap", or "none" with the reason in `why`."""

    kind: str
    why: str = ""
    first_uid: int = FIRST_UID  # this grader's range (claim_uids)

    @property
    def sandboxed(self) -> bool:
        return self.kind == "bwrap"

    def describe(self) -> str:
        return "sandboxed (bubblewrap)" if self.sandboxed else f"not sandboxed: {self.why}"

    def command(
        self,
        box: Path,
        scratch: Path,
        argv: list[str],
        slot: int,
        limits: Limits,
        cpu: int = 600,
        threads: int = 1,
    ) -> tuple[list[str], dict[str, str] | None]:
        """The command line that runs pytest with `argv` on the box, and its environment
        (None: bwrap sets it; the working directory is the box either way)."""
        as_root = os.geteuid() == 0
        nproc = limits.processes if self.sandboxed and as_root else -1
        python = [
            sys.executable,
            "-E",
            "-s",
            "-c",
            LAUNCHER,
            str(limits.memory),
            str(cpu),
            str(limits.file_size),
            str(nproc),
            *argv,
        ]
        if not self.sandboxed:
            return python, _environment(str(scratch), threads)
        # /tmp before this Python: a venv under /tmp (a CI clone there) must stay visible.
        cmd = [
            shutil.which("bwrap") or "bwrap",
            *_isolation(as_root),
            *_system(),
            "--size",
            str(limits.scratch),
            "--perms",
            "1777",
            "--tmpfs",
            "/tmp",
            *_python(),
            "--ro-bind",
            str(box),
            BOX,
            "--chdir",
            BOX,
            "--clearenv",
        ]
        for key, value in _environment("/tmp", threads).items():
            cmd += ["--setenv", key, value]
        if as_root:
            uid = str(self.first_uid + slot % UID_RANGE)
            cmd += [
                "--",
                "setpriv",
                "--reuid",
                uid,
                "--regid",
                uid,
                "--clear-groups",
                "--no-new-privs",
                "--inh-caps",
                "-all",
                "--bounding-set",
                "-all",
            ]
        else:
            cmd += ["--"]
        return [*cmd, *python], None


def _isolation(as_root: bool) -> list[str]:
    flags = [
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ]
    if not as_root:
        flags += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns"]
    return flags


def _system() -> list[str]:
    """Read-only binds of the system."""
    out = ["--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            out += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            out += ["--ro-bind", top, top]
    for f in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        out += ["--ro-bind-try", f, f]
    return out


def _python() -> list[str]:
    """Read-only binds of this Python: its venv and its base install, wherever they are."""
    out: list[str] = []
    made: set[str] = {"/", "/usr", "/tmp", "/proc", "/dev", "/etc"}
    for where in dict.fromkeys(
        [
            sys.prefix,
            os.path.realpath(sys.prefix),
            sys.base_prefix,
            os.path.realpath(sys.base_prefix),
        ]
    ):
        if where.startswith("/usr/"):
            continue
        parents = Path(where).parents
        for parent in reversed([str(p) for p in parents]):
            if parent not in made:
                out += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        out += ["--ro-bind", os.path.realpath(where), where]
        made.add(where)
    return out


def _environment(scratch: str, threads: int) -> dict[str, str]:
    """A clean environment: no token or secret of the grader's reaches learner code."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": scratch,
        "TMPDIR": scratch,
        "USER": "grader",
        "CI": "true",
        "HYPOTHESIS_PROFILE": "ci",
        "HYPOTHESIS_STORAGE_DIRECTORY": f"{scratch}/.hypothesis",
        "MPLCONFIGDIR": f"{scratch}/.matplotlib",
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "GPT_KATAS_IMPL": "katas",
        "GPT_KATAS_REF": "",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }


_held: list = []  # the lock files of the uid ranges this process holds


def claim_uids(lock_dir: Path | None = None) -> int:
    """The first uid of a range no other grader on this host holds, held from now until this
    process ends. Raises OSError when all UID_RANGES are taken."""
    where = lock_dir or Path(tempfile.gettempdir()) / UID_LOCKS
    where.mkdir(mode=0o755, exist_ok=True)
    for n in range(UID_RANGES):
        fd = os.open(where / f"{n}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held.append(fd)
        return FIRST_UID + n * UID_RANGE
    raise OSError(f"all {UID_RANGES} uid ranges in {where} are held by graders running now")


def find_sandbox(wanted: str = "auto") -> Sandbox:
    """ "auto": bwrap if it works here, else none (with the reason); "bwrap": bwrap or an error
    (GradeError's text in `why`, kind "missing"); "none": never sandbox."""
    if wanted == "none":
        return Sandbox("none", "--sandbox none was asked for")
    if not sys.platform.startswith("linux"):
        why = f"bubblewrap needs Linux (this is {sys.platform})"
    elif shutil.which("bwrap") is None:
        why = "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    else:
        probe = Sandbox("bwrap")
        cmd, _ = probe.command(Path("/tmp"), Path("/tmp"), [], 0, Limits())
        cmd[cmd.index("-c") + 1] = "pass"
        done = subprocess.run(cmd[: cmd.index("-c") + 2], capture_output=True, text=True)
        if done.returncode == 0:
            if os.geteuid() == 0:
                try:
                    probe.first_uid = claim_uids()
                except OSError as err:
                    return Sandbox(
                        "missing" if wanted == "bwrap" else "none",
                        f"no uid range free for this grader ({err})",
                    )
            return probe
        why = (
            "bwrap cannot start here ("
            + (done.stderr.strip().splitlines() or ["?"])[-1]
            + "); docs/grading.md says how to allow it"
        )
    return Sandbox("missing" if wanted == "bwrap" else "none", why)


def kill(proc: subprocess.Popen) -> None:
    """Kill a run: its process group (bwrap's PID namespace takes every process in it along)."""
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
