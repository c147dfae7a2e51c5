"""Send the tracking a job could not deliver: the file its launcher saved when the MLflow store did not answer.

    python scripts/track.py --replay build/mlflow/unsent/FILE.jsonl [--tracking-uri URI]

A job never fails or waits for tracking: when the store is unreachable it warns once, keeps what it would have
logged and, if the store is still down when the job ends, saves it to a file under build/mlflow/unsent/. This
command sends such a file (to the store it was meant for, or --tracking-uri) and removes it once all is sent;
on a failure it keeps what is still unsent in the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replay", type=Path, nargs="+", required=True, metavar="FILE", help="journal file(s)")
    parser.add_argument("--tracking-uri", help="send there instead of the store the file names")
    args = parser.parse_args(argv)
    from ..tracking import journal

    status = 0
    for path in args.replay:
        try:
            sent = journal.replay(path, args.tracking_uri)
        except ValueError as err:
            status = errors.fail(err, 2)
            continue
        except Exception as err:  # the store failed again: the file keeps what is unsent
            status = errors.fail(f"{path}: the store did not take it ({type(err).__name__}: {err}); kept for later", 1)
            continue
        print(f"{path}: {sent} event(s) sent")
    return status


if __name__ == "__main__":  # python -m classifier_host.cli.track
    sys.exit(main())
