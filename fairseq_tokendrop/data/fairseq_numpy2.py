"""What numpy 2 broke in fairseq 0.12's data code, mended for the call that needs it.

pip installs numpy 2 beside ve-fairseq 0.12.3. numpy 2 removed ``np.compat``, and fairseq's
``TokenBlockDataset`` still builds its index for ``--sample-break-mode eos`` with
``np.compat.long``, so that mode stopped with "AttributeError: module 'numpy' has no attribute
'compat'" while every other mode works.
"""
import types
from contextlib import contextmanager

import numpy as np


@contextmanager
def numpy_compat_long():
    """``np.compat.long`` for the duration of the block: Python's ``int``, as numpy 1 had it (its
    ``numpy.compat.long``); removed again afterwards. With numpy 1 nothing changes."""
    if hasattr(np, "compat"):
        yield
        return
    np.compat = types.SimpleNamespace(long=int)
    try:
        yield
    finally:
        del np.compat
