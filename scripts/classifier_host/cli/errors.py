"""How a command ends on an error it expects: one line `error: ...` on stderr and an exit status, no
traceback (the message already says what to do). Status 2: the command was given something it cannot use
(arguments, settings); 1: what it started failed."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..deployment import DeletionError, DeploymentError
from ..settings import SettingsError

# deploy.py (cloud), deploy.py --delete and teardown.py.
DEPLOYMENT = {SettingsError: 2, DeploymentError: 1}
DELETION = {SettingsError: 2, DeletionError: 1}


def fail(message: object, status: int = 2) -> int:
    """Print `error: message` on stderr; the exit status to return."""
    print(f"error: {message}", file=sys.stderr)
    return status


def run(action: Callable[[], object], statuses: dict[type[Exception], int]) -> int:
    """Run `action`; 0 when it returns, the status of the first listed type it raises (after its message)."""
    try:
        action()
    except tuple(statuses) as err:
        return fail(err, next(status for kind, status in statuses.items() if isinstance(err, kind)))
    return 0


def exit_status(
    action: Callable[[], object], expected: type[Exception] | tuple[type[Exception], ...], status: int = 1
) -> int:
    """Run `action`; 0 when it returns, `status` (after printing the message) when it raises `expected`."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return run(action, dict.fromkeys(kinds, status))
