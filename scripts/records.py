"""Print what the cloud commands recorded, for the Makefile and buildspec.yml.

    python scripts/records.py recorded NAME    the last NAME a cloud command created (endpoint, training-job)
    python scripts/records.py pushed ROLE      the digest reference `make push` recorded ('train', 'serve', 'serve-cpu')


The command lives in classifier_host.cli.records (`--help` for every option).
"""

import sys

from classifier_host.cli import records

if __name__ == "__main__":
    sys.exit(records.main())
