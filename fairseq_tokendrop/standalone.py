"""Registered models built in-process, without fairseq-train or a data-bin.

For benchmarks, tests and notebooks: a dictionary of made-up words, and the
few task attributes that ``build_model`` and the masked-LM criteria read.
"""
import argparse

from fairseq.data import Dictionary
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY


class StandaloneTask:
    """What ``build_model`` and the masked-LM criteria read from a fairseq task."""

    # its callers apply the pending importance update after each step, as masked_lm_tokendrop's
    # optimizer_step does: the research tools through the same hooks (research.mode), tests by hand
    feeds_token_importance = True

    def __init__(self, dictionary: Dictionary, max_positions: int):
        self.source_dictionary = self.target_dictionary = self.dictionary = dictionary
        self._max_positions = max_positions

    def max_positions(self) -> int:
        return self._max_positions


def made_up_dictionary(size: int) -> Dictionary:
    """``size`` entries: fairseq's 4 specials, words ``w0, w1, ...``, and ``<mask>`` last."""
    d = Dictionary()
    for i in range(size - len(d) - 1):
        d.add_symbol(f"w{i}")
    d.add_symbol("<mask>")
    return d


def build_model(arch: str, dictionary: Dictionary, **args):
    """The model of a registered ``arch`` (``roberta_base``, ``tokendrop_roberta_base``, ...).

    ``args`` are the command-line options with '_' for '-' (``max_positions``
    is required); the arch fills in the rest, as fairseq-train does.
    """
    ns = argparse.Namespace(**args)
    ARCH_CONFIG_REGISTRY[arch](ns)
    return ARCH_MODEL_REGISTRY[arch].build_model(ns, StandaloneTask(dictionary, ns.max_positions))
