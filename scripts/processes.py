"""Where a run's processes come from: this process's device and place among torchrun's
processes (Runtime), and NPROC=n's launcher, which starts them once the settings are checked."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "scripts" / "train.py"  # what NPROC=n starts on every process
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402

harness.use(harness.program_impl())  # as train.py does: the chosen katas

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from shakespeare import pick_device  # noqa: E402


@dataclass
class Runtime:
    """Where this process trains: the device, and its place among torchrun's processes."""

    device: str
    rank: int = 0
    distributed: bool = False

    @property
    def world(self) -> int:
        return dist.get_world_size() if self.distributed else 1


def start_runtime(args: argparse.Namespace) -> Runtime:
    """The device (--device, else the fastest), the process group under torchrun, threads."""
    distributed = "RANK" in os.environ  # started by torchrun
    device = args.device or pick_device()
    if distributed:
        local_rank = int(os.environ["LOCAL_RANK"])
        if device == "cuda":
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.device(device).type == "cuda":  # TF32 for what autocast leaves in fp32
        torch.set_float32_matmul_precision("high")
    return Runtime(device, int(os.environ.get("RANK", 0)), distributed)


def launch(nproc: int, argv: list[str]) -> int:
    """NPROC=n: this command again on n processes, started by torchrun's launcher (run here, in
    this process). A process that fails has printed its one line; the launcher's own report
    of the failure (a traceback) is left out, and its exit code is returned."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)
    launcher = get_args_parser().parse_args(
        ["--standalone", f"--nproc_per_node={nproc}", str(TRAIN), *argv]
    )
    try:
        run(launcher)
    except ChildFailedError as err:
        return max(failure.exitcode for failure in err.failures.values()) or 1
    return 0


def without_nproc(argv: list[str]) -> list[str]:
    """The command line for the processes that --nproc starts: the same, less --nproc."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def exit_without_teardown(code: int) -> None:
    """End a torchrun process without the interpreter's teardown. By now everything is saved
    and the process group is destroyed, yet torch's gloo backend can still abort in its C++
    destructors at exit ("terminate called without an active exception", about 3 CPU runs
    in 100), and torchrun would report that as a failed run."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
