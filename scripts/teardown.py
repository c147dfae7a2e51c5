"""Delete what the cloud targets created and still costs money by the hour, and say what is left.

    python scripts/teardown.py [--endpoint NAME]      (make teardown)

The command lives in classifier_host.cli.teardown (`--help` for every option).
"""

import sys

from classifier_host.cli import teardown

if __name__ == "__main__":
    sys.exit(teardown.main())
