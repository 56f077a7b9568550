"""The command line: argparse -> library calls -> exit status. Nothing else lives here."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import MapError, UsageError
from .common import EXIT_UNEXPECTED, EXIT_USAGE, say
from .parser import parse_command_line, settings_from


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (0 ok, 1 unexpected, 2 usage, 3 unreadable input)."""
    try:
        args = parse_command_line(argv)
        if args.command == "watch":
            from .watch import watch_main

            return watch_main(args, settings_from(args))
        if args.command == "show":
            from .show import show_main

            return show_main(args)
        from .run import run_main

        return run_main(args)
    except UsageError as err:
        say(f"error: {err}")
        return EXIT_USAGE
    except MapError as err:
        say(f"error: {err}")
        return EXIT_UNEXPECTED
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except Exception as err:
        say(f"unexpected error: {type(err).__name__}: {err}")
        if os.environ.get("MAPREDUCE_LOGS_DEBUG"):
            raise
        return EXIT_UNEXPECTED
