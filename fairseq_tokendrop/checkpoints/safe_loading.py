"""Load fairseq checkpoints with torch's ``weights_only`` unpickler left on.

torch >= 2.6 defaults ``torch.load`` to ``weights_only=True``; fairseq's resume
then stops at "Unsupported global: argparse.Namespace", and fairseq main
answers by passing ``weights_only=False``, which runs whatever a pickle asks
for. Instead we allowlist the few plain-data classes fairseq checkpoints
carry, and those of fairseq's broadcast of a checkpoint from rank 0 to the
other data-parallel ranks (which unpickles it again). Anything else is still
refused by torch.

**Refusals, as one line.** torch refuses with a traceback that ends in advice
for Python callers (``add_safe_globals``, ``weights_only=False``) that a
``fairseq-train`` user cannot follow. Importing the plugin installs a
``sys.excepthook`` that prints an *uncaught* refusal as one line instead:
the file, the globals its pickle asks for, and the opt-in below. It also
prints an uncaught :class:`CheckpointMismatch` (a checkpoint that does not fit
the model being built) as one line. Nothing in fairseq is patched: the hook
only sees exceptions nobody caught, and hands every other one to the hook
that was there before.

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
import os
import pickle
import sys
import typing
from typing import Optional

import torch
from fairseq.distributed.utils import _TensorPlaceholder
from omegaconf import DictConfig, ListConfig
from omegaconf.base import ContainerMetadata, Metadata
from omegaconf.nodes import AnyNode

from ..flags import ERROR_PREFIX

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


class CheckpointMismatch(ValueError):
    """A checkpoint that loads but does not fit the model built for it (e.g. another dictionary)."""


def allow_fairseq_checkpoint_globals() -> None:
    torch.serialization.add_safe_globals(SAFE_GLOBALS)


def is_refusal(exc: BaseException) -> bool:
    # torch re-raises every weights-only failure as UnpicklingError with this opening.
    return isinstance(exc, pickle.UnpicklingError) and str(exc).startswith("Weights only load failed")


def refused_file(tb) -> Optional[str]:
    """The file the innermost ``torch.load`` in ``tb`` was reading, if it was a named file.

    ``f`` is ``torch.load``'s documented first parameter: a path, or an open
    file (fairseq passes one), whose ``name`` is the path.
    """
    path = None
    while tb is not None:
        if tb.tb_frame.f_code is torch.serialization.load.__code__:
            f = tb.tb_frame.f_locals.get("f")
            path = getattr(f, "name", f)
        tb = tb.tb_next
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None


def refusal_message(path: str) -> str:
    try:
        asked = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # a legacy (non-zip) file or an unreadable one: the refusal itself stands
        asked = ""
    return (f"refused to load {path}: its pickle asks for {asked or 'globals torch does not allow'}, "
            f"which could run code; only if you trust this file, rerun with {OPT_IN} "
            f"(unsafe: then any code the file names runs)")


def mismatch_message(exc: BaseException) -> Optional[str]:
    """One line for a CheckpointMismatch, also when fairseq re-raised it under its own message.

    ``Trainer.load_checkpoint`` turns any load failure into "Cannot load model
    parameters from checkpoint FILE; ...": that message names the file, ours
    says why.
    """
    for outer, inner in ((None, exc), (exc, exc.__context__)):
        if isinstance(inner, CheckpointMismatch):
            return f"{str(outer).rstrip('.')}: {inner}" if outer is not None else str(inner)
    return None


def _one_line_hook(previous):
    def hook(exc_type, exc, tb):
        path = refused_file(tb) if is_refusal(exc) else None
        line = refusal_message(path) if path is not None else mismatch_message(exc)
        if line is None:
            return previous(exc_type, exc, tb)
        print(ERROR_PREFIX + line, file=sys.stderr)

    hook.fairseq_tokendrop = True
    return hook


def install_one_line_errors() -> None:
    if not getattr(sys.excepthook, "fairseq_tokendrop", False):
        sys.excepthook = _one_line_hook(sys.excepthook)
