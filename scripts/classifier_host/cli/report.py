"""One self-contained HTML report of a training job: curves, debugger rules, utilisation, profiler.

    python scripts/report.py JOB [--out FILE]

JOB is a job folder holding model.tar.gz and/or output.tar.gz (as local mode writes them, or as
downloaded from S3; already-extracted folders work too), or a scripts/train.py --output-dir (its
last job). The report is JOB/report.html unless --out says otherwise; rules.json lands beside it.
What it reads: reports/training.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import exit_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", type=Path, help="job folder (model.tar.gz, output.tar.gz) or a training --output-dir")
    parser.add_argument("--out", type=Path, help="HTML file to write (default JOB/report.html)")
    args = parser.parse_args(argv)
    from ..reports.training import ReportError, build_report  # numpy, PIL (matplotlib and smdebug when it runs)

    logging.getLogger("smdebug").setLevel(logging.WARNING)  # smdebug logs every file it opens

    def write_report() -> None:
        path = build_report(args.job, args.out)
        for rule in json.loads((path.parent / "rules.json").read_text()):
            at = f" at step {rule['step']}" if rule["step"] is not None else ""
            print(f"rule {rule['rule']}: {rule['status']}{at} - {rule['reason']}", file=sys.stderr)
        print(f"report: {path}")

    return exit_status(write_report, ReportError, status=2)


if __name__ == "__main__":  # python -m classifier_host.cli.report
    sys.exit(main())
