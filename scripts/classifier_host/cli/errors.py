"""How a command ends on an error it expects: one line `error: ...` on stderr and an exit status, no
traceback (the message already says what to do)."""

from __future__ import annotations

import sys
from collections.abc import Callable


def exit_status(
    action: Callable[[], object], expected: type[Exception] | tuple[type[Exception], ...], status: int = 1
) -> int:
    """Run `action`; 0 when it returns, `status` (after printing the message) when it raises `expected`."""
    try:
        action()
    except expected as err:
        print(f"error: {err}", file=sys.stderr)
        return status
    return 0
