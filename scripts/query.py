"""Send images to the classifier and print the breeds ranked with probabilities.

`python scripts/query.py --help` lists its options; the command is classifier_host.cli.query.main
(also on the venv's PATH as `classifier-query`).
"""

import sys

from classifier_host.cli import query

if __name__ == "__main__":
    sys.exit(query.main())
