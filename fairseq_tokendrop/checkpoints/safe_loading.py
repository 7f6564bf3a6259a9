"""Load fairseq checkpoints with torch's ``weights_only`` unpickler left on.

torch >= 2.6 defaults ``torch.load`` to ``weights_only=True``; fairseq's resume
then stops at "Unsupported global: argparse.Namespace", and fairseq main
answers by passing ``weights_only=False``, which runs whatever a pickle asks
for. Instead we allowlist the few plain-data classes fairseq checkpoints
carry, and those of fairseq's broadcast of a checkpoint from rank 0 to the
other data-parallel ranks (which unpickles it again). Anything else is still
refused by torch.

**Refusals.** Under ``fairseq-train`` a refused file stops the run with
torch's own error, which names the globals the pickle asks for, after
fairseq's log line naming the file; nothing in fairseq or Python is patched to
shorten it. The plugin's own commands load through :func:`load_checkpoint`,
which turns a refusal into one line: the file, the globals and the opt-in below.

**Opt-in for trusted legacy files (unsafe).** ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``,
torch's own switch, makes every ``torch.load`` that does not pass
``weights_only`` itself unpickle with plain ``pickle``. fairseq's loader is
such a call, so the switch covers ``fairseq-train --restore-file``,
``from_pretrained`` and the plugin's scripts alike, and it runs whatever
code the file names. The plugin adds no switch of its own: one would have to
hand ``weights_only=False`` to fairseq's ``torch.load``, which only patching
fairseq could do, and it could not be narrower than torch's.
"""
import argparse
import collections
import pickle
import typing

import torch
from fairseq import checkpoint_utils
from fairseq.distributed.utils import _TensorPlaceholder
from omegaconf import DictConfig, ListConfig
from omegaconf.base import ContainerMetadata, Metadata
from omegaconf.nodes import AnyNode

from ..errors import TokendropError
from .verification import refuse_damaged, refuse_non_finite_scores

# What a fairseq checkpoint file asks for: its cfg.model, as a legacy argparse.Namespace.
CHECKPOINT_GLOBALS = [argparse.Namespace]
# What fairseq's own broadcast of a loaded checkpoint to the other ranks asks for
# (distributed_utils.broadcast_object: torch.save of the state with its tensors replaced by
# _TensorPlaceholder, then torch.load on every other rank). The state then holds cfg as the
# OmegaConf DictConfig that load_checkpoint_to_cpu made of the file's plain dict; an OmegaConf
# node pickles as these classes, its type annotations (typing.Any, dict, list, int) and the
# defaultdict of its flags. None of them runs code when unpickled: torch only calls their
# constructors and __setstate__, which store fields. (An interpolation such as ${oc.env:X}
# in a cfg value is no new door: load_checkpoint_to_cpu already makes the file's plain cfg
# a DictConfig, interpolations included.)
BROADCAST_GLOBALS = [_TensorPlaceholder, DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode,
                     typing.Any, dict, list, int, collections.defaultdict]
SAFE_GLOBALS = CHECKPOINT_GLOBALS + BROADCAST_GLOBALS
OPT_IN = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1"


def allow_fairseq_checkpoint_globals() -> None:
    torch.serialization.add_safe_globals(SAFE_GLOBALS)


def is_refusal(exc: BaseException) -> bool:
    # torch re-raises every weights-only failure as UnpicklingError with this opening.
    return isinstance(exc, pickle.UnpicklingError) and str(exc).startswith("Weights only load failed")


def refusal_message(path: str) -> str:
    try:
        asked = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # a legacy (non-zip) file or an unreadable one: the refusal itself stands
        asked = ""
    return (f"refused to load {path}: its pickle asks for {asked or 'globals torch does not allow'}, "
            f"which could run code; only if you trust this file, rerun with {OPT_IN} "
            f"(unsafe: then any code the file names runs)")


def load_checkpoint(path: str, **kwargs) -> dict:
    """fairseq's ``load_checkpoint_to_cpu`` of a file checked whole, against its CRC-32s and for finite
    scores (``verification.py``), with a refused pickle as one line naming the file."""
    refuse_damaged(path)
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path, **kwargs)
    except pickle.UnpicklingError as e:
        if not is_refusal(e):
            raise
        raise TokendropError(refusal_message(path)) from None
    refuse_non_finite_scores(path, state)
    return state
