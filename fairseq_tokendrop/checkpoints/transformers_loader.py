"""Import ``transformers`` next to a torchaudio build that cannot load.

fairseq (ve-fairseq 0.12.3) requires torchaudio, and pip resolves the newest
one (2.11 at the time of writing), whose compiled extension does not load with
a newer torch (torch 2.13 here: ``OSError: ... libc10_cuda.so``). transformers
imports torchaudio whenever it is installed (``audio_utils.py``), so even
``RobertaForMaskedLM`` fails to import, though nothing here uses audio. A
torchaudio that fails to load is marked absent (a ``None`` entry in
``sys.modules`` makes ``importlib.util.find_spec`` answer None), with a
warning, before transformers looks for it. A working torchaudio is left alone.
"""
import logging
import sys

logger = logging.getLogger(__name__)


def import_transformers():
    try:
        import torchaudio  # noqa: F401
    except ImportError:
        pass
    except OSError as e:
        logger.warning("torchaudio is installed but cannot load (%s); hiding it from transformers", e)
        sys.modules["torchaudio"] = None
    import transformers

    return transformers
