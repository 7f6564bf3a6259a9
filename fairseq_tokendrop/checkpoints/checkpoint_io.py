"""Checkpoints written for other programs: plain containers, atomic files.

Every checkpoint the plugin writes, fairseq-train's through ``fairseq_saves.py``
included, goes through :func:`atomic_torch_save` or :func:`atomic_copy`: a
temporary name, fsync, rename (``atomic_file``), and a failed write (a full disk)
as one line that leaves no temporary file and the old file as it was.

A fairseq-train checkpoint of a RoBERTa-style model pickles its ``cfg.model``
as an ``argparse.Namespace``, which torch >= 2.6's ``weights_only`` loader
refuses unless allowlisted (``safe_loading.py``). What we write instead holds
only dicts, lists, scalars and tensors, so stock fairseq loads it as is;
``load_checkpoint_to_cpu`` turns a dict ``cfg`` into an OmegaConf config
(``checkpoint_utils.py``). The keys a checkpoint needs besides ``model`` and
``cfg`` are the ones ``checkpoint_utils._upgrade_state_dict`` and
``Trainer.load_checkpoint`` read: ``optimizer_history[-1]`` (criterion and
optimizer names, ``lr_scheduler_state``, ``num_updates``) and
``extra_state["train_iterator"]``.
"""
import argparse
import contextlib
import os
import shutil
from collections import OrderedDict
from typing import Iterator, Mapping, Optional, Sequence

import torch
from fairseq.models import ARCH_MODEL_REGISTRY
from omegaconf import OmegaConf

from ..atomic_file import atomic_path
from ..errors import TokendropError
from .scores_in_state_dict import METADATA_KEY

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # what --user-dir names


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` to ``path`` whole or not at all (``atomic_file``), a failed write as one line."""
    with written_whole(path) as tmp, open(tmp, "wb") as f:
        sink = _KeepsWriteErrors(f)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is None:
                raise
            raise sink.error from None


def atomic_copy(src: str, dst: str) -> None:
    """A copy of ``src`` at ``dst`` whole or not at all, a failed write as one line."""
    with written_whole(dst) as tmp:
        shutil.copyfile(src, tmp)


@contextlib.contextmanager
def written_whole(path: str) -> Iterator[str]:
    """``atomic_path``, with a failed write (a full disk, a quota, an I/O error) as a TokendropError
    naming the file; the temporary file is gone and ``path`` is as it was."""
    try:
        with atomic_path(path) as tmp:
            yield tmp
    except OSError as e:
        raise TokendropError(f"cannot write {path}: {e.strerror or e}; {path} is as it was") from None


class _KeepsWriteErrors:
    """The file ``torch.save`` writes through, keeping the ``OSError`` of a failed write: torch's zip
    writer reports one only as a RuntimeError ("unexpected pos ..."), without its errno."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data):
        try:
            return self.file.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self):
        self.file.flush()


def plain(obj):
    """``obj`` with every ``argparse.Namespace`` and OmegaConf node turned into a dict, recursively."""
    if OmegaConf.is_config(obj):
        obj = OmegaConf.to_container(obj, resolve=True)
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    return obj


def without_importance(state_dict: Mapping) -> "OrderedDict":
    """A copy of a model state dict minus the token-importance scores in its metadata.

    Needed where the scores must not come back on load: a stock export, and a fresh
    start (``--restore-file``), where saved scores would override ``--token-importance-init``.
    """
    out = OrderedDict(state_dict)
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        out._metadata = OrderedDict(
            (k, {mk: mv for mk, mv in v.items() if mk != METADATA_KEY}) for k, v in metadata.items())
    return out


# The model flags a converted checkpoint records, and fairseq-train must be given again.
DIMENSION_FLAGS = {"encoder_layers": "--encoder-layers", "encoder_embed_dim": "--encoder-embed-dim",
                   "encoder_ffn_embed_dim": "--encoder-ffn-embed-dim",
                   "encoder_attention_heads": "--encoder-attention-heads", "max_positions": "--max-positions",
                   "activation_fn": "--activation-fn", "layer_norm_eps": "--layer-norm-eps"}


def dimension_flags(model_args: Mapping) -> list:
    return [str(a) for key, flag in DIMENSION_FLAGS.items() if key in model_args for a in (flag, model_args[key])]


def training_cfg(data_dir: str, arch: str, model_args: Mapping, *extra_flags: str) -> dict:
    """The cfg fairseq-train records for this model at update 0, parsed by fairseq itself."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    argv = [data_dir, "--task", "masked_lm_tokendrop", "--criterion", "masked_lm_tokendrop", "--arch", arch,
            "--tokens-per-sample", str(model_args["max_positions"]), "--dropout", str(model_args["dropout"]),
            "--attention-dropout", str(model_args["attention_dropout"]), *dimension_flags(model_args),
            *extra_flags]
    return plain(convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv)))


def fresh_training_state(cfg: dict, model_state: Mapping, criterion_name: str,
                         num_updates: int = 0, extra_state: Optional[dict] = None) -> dict:
    """A checkpoint with no optimizer state: fairseq-train ``--restore-file`` starts from its weights."""
    return {
        "args": None,
        "cfg": cfg,
        "model": model_state,
        "criterion": None,
        "optimizer_history": [{"criterion_name": criterion_name, "optimizer_name": "none",
                               "lr_scheduler_state": {}, "num_updates": num_updates}],
        "task_state": {},
        "extra_state": extra_state or {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0,
                                                          "version": 2, "shuffle": True}},
        "last_optimizer_state": None,
    }


def restore_command(out_dir: str, arch: str, flags: Sequence[str]) -> str:
    """The fairseq-train command that goes on from ``OUT/model.pt``, a :func:`fresh_training_state`."""
    return (f"fairseq-train DATA-BIN --user-dir {PLUGIN_DIR} --task masked_lm_tokendrop --arch {arch} "
            f"{' '.join(flags)} --restore-file {out_dir}/model.pt "
            "--reset-optimizer --reset-dataloader --reset-meters --reset-lr-scheduler ...")


def stock_arch(arch):
    """``tokendrop_roberta_large`` -> ``roberta_large``; anything else -> a stock arch of that name or roberta_base."""
    name = arch.replace("tokendrop_", "", 1)
    model = ARCH_MODEL_REGISTRY.get(name)
    return name if model is not None and model.__module__.startswith("fairseq.") else "roberta_base"
