"""`python -m classifier.serving [serve]`: what the image's `serve` executable runs."""

import sys

from .server import main

sys.exit(main())
