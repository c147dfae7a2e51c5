"""Register a trained model with its evaluation, and promote it to champion only if it is not worse.

`python scripts/register.py --help` lists its options; the command is classifier_host.cli.register.main
(also on the venv's PATH as `classifier-register`).
"""

import sys

from classifier_host.cli import register

if __name__ == "__main__":
    sys.exit(register.main())
