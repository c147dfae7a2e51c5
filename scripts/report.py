"""One self-contained HTML report of a training job: curves, debugger rules, utilisation, profiler.

`python scripts/report.py --help` lists its options; the command is classifier_host.cli.report.main
(also on the venv's PATH as `classifier-report`).
"""

import sys

from classifier_host.cli import report

if __name__ == "__main__":
    sys.exit(report.main())
