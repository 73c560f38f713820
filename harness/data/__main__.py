import argparse
import os
import sys
from pathlib import Path

from harness.data import fetch

parser = argparse.ArgumentParser(
    prog="python -m harness.data",
    description=fetch.__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
)
parser.add_argument(
    "--mirror",
    type=Path,
    default=os.environ.get("DATA_MIRROR") or None,
    help="copy from this directory instead of downloading (default $DATA_MIRROR)",
)
args = parser.parse_args()
try:
    for path in fetch.fetch_all(mirror=args.mirror):
        print(
            f"ok  {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}"
            f"  (sha256 verified)"
        )
except fetch.DataError as err:
    sys.exit(f"data step failed: {err}")
