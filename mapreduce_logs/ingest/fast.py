"""The fast path's pieces: what a canonical line is, and the block-level helpers.

A canonical line is ``YYYY-MM-DDTHH:MM:SSZ LEVEL SERVICE USER`` with single spaces, an upper-case
level, printable-ASCII service and user, a date and time that are valid by construction of the
pattern (Feb 29 and year 0000 are left to the exact path), then whitespace and any message.
Everything about such a line can be read from its head, so a block is scanned with one regex call
and counted with C-level ``Counter`` and slicing, not a Python step per line.
"""

from __future__ import annotations

import re
from typing import Final

from .parse import DAY, MAX_LINE, days_from_civil

_DATE: Final = (
    rb"(?!0000)[0-9]{4}-(?:"
    rb"(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    rb"|(?:0[13-9]|1[0-2])-(?:29|30)"
    rb"|(?:0[13578]|1[02])-31)"
)
_TIME: Final = rb"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z"
_LEVEL: Final = rb"(?:INFO|ERROR|WARN(?:ING)?|DEBUG|TRACE|NOTICE|CRITICAL|FATAL)"

CANONICAL: Final = re.compile(
    rb"(" + _DATE + _TIME + rb" " + _LEVEL + rb" [!-~]+ [!-~]+)(?=[ \t\r\x0b\x0c\n])[^\n]*\n"
    rb"|[^\n]*\n"
)
"""One match per line of a block: the head of a canonical line, or b"" for any other line."""

ERROR_TOKENS: Final = frozenset({b"ERROR", b"CRITICAL", b"FATAL"})


def all_lines_short(block: bytes) -> bool:
    """True when no line of ``block`` (which ends with ``\\n``) is over MAX_LINE bytes.

    Hops from line start to the last newline within MAX_LINE + 1 bytes: a few C calls per block.
    """
    pos, end = 0, len(block)
    while end - pos > MAX_LINE + 1:
        found = block.rfind(b"\n", pos, pos + MAX_LINE + 1)
        if found < 0:
            return False
        pos = found + 1
    return True


def positions_of_empty(heads: list[bytes]) -> list[int]:
    """Indexes of the non-canonical lines (empty heads), found with C-level ``list.index``."""
    found: list[int] = []
    i = -1
    try:
        while True:
            i = heads.index(b"", i + 1)
            found.append(i)
    except ValueError:
        return found


def stamp_seconds(stamp: bytes) -> int:
    """Unix seconds of a canonical ``YYYY-MM-DDTHH:MM:SSZ`` stamp."""
    days = days_from_civil(int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]))
    return days * DAY + int(stamp[11:13]) * 3600 + int(stamp[14:16]) * 60 + int(stamp[17:19])
