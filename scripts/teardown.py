"""Delete what the cloud targets created and still costs money by the hour, and say what is left.

`python scripts/teardown.py --help` lists its options; the command is classifier_host.cli.teardown.main
(also on the venv's PATH as `classifier-teardown`).
"""

import sys

from classifier_host.cli import teardown

if __name__ == "__main__":
    sys.exit(teardown.main())
