"""Send the tracking a job could not deliver: the file its launcher saved when the MLflow store did not answer.

`python scripts/track.py --help` lists its options; the command is classifier_host.cli.track.main
(also on the venv's PATH as `classifier-track`).
"""

import sys

from classifier_host.cli import track

if __name__ == "__main__":
    sys.exit(track.main())
