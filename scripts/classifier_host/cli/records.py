"""Print what the cloud commands recorded, for the Makefile and buildspec.yml.

python scripts/records.py recorded NAME    the last NAME a cloud command created (endpoint, training-job)
python scripts/records.py pushed ROLE      the digest reference `make push` recorded ('train', 'serve', 'serve-cpu')
"""

from __future__ import annotations

import argparse
import sys

from .. import records, settings
from . import errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("recorded", "pushed"))
    parser.add_argument("name", metavar="NAME|ROLE")
    args = parser.parse_args(argv)
    if args.what == "pushed":
        try:
            print(records.pushed_image(args.name))
        except settings.SettingsError as err:
            return errors.fail(err, 1)
        return 0
    value = records.recorded(args.name)
    if not value:
        return errors.fail(
            f"no {args.name} recorded in {settings.STATE_DIR}/ (run the cloud target that creates it first)",
            1,
        )
    print(value)
    return 0


if __name__ == "__main__":  # python -m classifier_host.cli.records
    sys.exit(main())
