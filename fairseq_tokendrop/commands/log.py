"""The one way every command reports progress: ``NAME: message`` on stderr, flushed at once.

stderr, so that a command's stdout stays its result (a table, JSON) for pipes;
flushed, so that a long step shows up while it runs and not when it ends.
"""
import sys
from typing import Callable


def command_log(name: str) -> Callable[[str], None]:
    def log(message: str) -> None:
        print(f"{name}: {message}", file=sys.stderr, flush=True)

    return log
