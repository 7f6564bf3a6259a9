"""Files that appear whole or not at all.

Everything the plugin and its scripts publish (checkpoints, dictionaries,
metadata, reports) is written under a temporary name in the same directory and
renamed into place: ``os.replace`` is atomic within a file system, so a reader
or a killed run never sees a half-written file under the final name.
"""
import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary name next to ``path``; it becomes ``path`` only if the block succeeds."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
