"""Send images to the classifier and print the breeds ranked with probabilities.

    python scripts/query.py --url http://localhost:8080 IMAGE|DIR|URL ...      (a local container)
    python scripts/query.py --endpoint NAME [--region R] IMAGE|DIR|URL ...     (a SageMaker endpoint)

The command lives in classifier_host.cli.query (`--help` for every option).
"""

import sys

from classifier_host.cli import query

if __name__ == "__main__":
    sys.exit(query.main())
