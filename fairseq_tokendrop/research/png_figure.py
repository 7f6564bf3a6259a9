"""The research tools' pictures: matplotlib drawing off-screen, and a PNG written whole or not at all.

matplotlib is the optional ``research`` extra, so it is imported here only when a picture is drawn; the
tools check for it first and say so in one line (compare_runs, fairseq-tokendrop-inspect).
"""
import logging
from pathlib import Path
from typing import Union

from ..atomic_file import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # fairseq's logging setup lets its debug through
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path: Union[str, Path], dpi: int) -> None:
    """``fig`` as a PNG at ``path`` through a temporary file and a rename, then closed: a failed write leaves
    no torn picture where the last one was."""
    with atomic_path(str(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
