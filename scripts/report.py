"""One self-contained HTML report of a training job: curves, debugger rules, utilisation, profiler.

python scripts/report.py JOB [--out FILE]
"""

import sys

from classifier_host.cli import report

if __name__ == "__main__":
    sys.exit(report.main())
