"""Option values more than one command parses the same way."""

from __future__ import annotations


def parse_hp(pairs: list[str]) -> dict[str, str]:
    """--hp NAME=VALUE pairs (train.py, tune.py) as a dict; a malformed pair ends the command."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"error: --hp expects NAME=VALUE, got {pair!r}")
        values[name.strip()] = value.strip()
    return values
