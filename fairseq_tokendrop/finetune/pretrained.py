"""A pretrained checkpoint as stock ``fairseq-train --arch roberta_base`` fine-tunes it.

Either kind of file: an export's ``model.pt`` (``export_checkpoint --fairseq-out``,
plain containers, its cfg names only stock components) or a raw checkpoint of
``fairseq-train --user-dir fairseq_tokendrop`` (its cfg.model is an
``argparse.Namespace``, which torch >= 2.6 unpickles only once the plugin has
allowlisted it: fairseq-train then gets ``--user-dir`` for that alone; the
model it builds is still stock ``RobertaModel``, which loads the weights
strictly, see docs/checkpoints.md).

Read from the checkpoint: the stock arch and the flags that give it the
pretrained shape (layers, widths, heads, positions, activation, where the
LayerNorms sit), and the folder holding its dictionary and tokenizer: the
checkpoint's own folder when it holds ``dict.txt`` or ``vocab.txt`` (an
export), else the data dir the checkpoint was trained on.
"""
import argparse
import os
from dataclasses import dataclass
from typing import Callable, List

from ..checkpoints.checkpoint_io import plain
from ..checkpoints.safe_loading import load_checkpoint
from ..checkpoints.checkpoint_io import stock_arch
from ..errors import TokendropError
from ..models.tokendrop_config import FAIRSEQ_LAYER_NORM_EPS

# RoBERTa's options that decide the encoder's parameters and function, with the value a stock
# roberta arch gives when the flag is not passed (fairseq's roberta base_architecture).
SHAPE_FLAGS = {"encoder_layers": None, "encoder_embed_dim": None, "encoder_ffn_embed_dim": None,
               "encoder_attention_heads": None, "max_positions": None, "activation_fn": None,
               "encoder_normalize_before": False, "layernorm_embedding": True, "untie_weights_roberta": False}
EMBEDDING_KEY = "encoder.sentence_encoder.embed_tokens.weight"


@dataclass
class Pretrained:
    path: str
    arch_flags: List[str]  # --arch and the shape flags
    max_positions: int
    embedding_rows: int
    needs_plugin: bool  # its pickle asks for argparse.Namespace: fairseq-train needs --user-dir to read it
    tokenizer_dir: str


def holds_namespace(state: dict) -> bool:
    """Whether the file's cfg.model (or a pre-hydra checkpoint's args) is an ``argparse.Namespace``,
    which torch >= 2.6 refuses to unpickle unless allowlisted."""
    cfg = state.get("cfg")
    return isinstance(state.get("args"), argparse.Namespace) or (
        cfg is not None and isinstance(cfg.get("model"), argparse.Namespace))


def model_args_of(state: dict) -> dict:
    cfg = state.get("cfg")
    model = plain(cfg["model"]) if cfg is not None and cfg.get("model") is not None else None
    if model is None and state.get("args") is not None:  # a checkpoint of fairseq before hydra
        model = plain(state["args"])
    if not model:
        raise TokendropError("the checkpoint's cfg has no model section: not a fairseq-train checkpoint")
    return model


def shape_flags(model_args: dict, path: str) -> List[str]:
    flags = ["--arch", stock_arch(model_args.get("arch") or model_args.get("_name") or "")]
    for key, unset in SHAPE_FLAGS.items():
        value = model_args.get(key)
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value and not unset:
                flags.append(flag)
            elif not value and unset:
                raise TokendropError(f"{path}: the model was built without {flag}, which stock RoBERTa "
                                      "always sets")
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def read_pretrained(path: str, tokenizer_dir: str, log: Callable[[str], None]) -> Pretrained:
    if not os.path.isfile(path):
        raise TokendropError(f"no such checkpoint: {path}")
    try:
        state = load_checkpoint(path)
    except Exception as err:
        raise TokendropError(f"cannot read {path} as a fairseq checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if "model" not in state:
        raise TokendropError(f"{path} holds no model weights: not a fairseq-train checkpoint")
    model_args = model_args_of(state)
    if model_args.get("num_segment") or any("segment_embeddings" in k for k in state["model"]):
        raise TokendropError(f"{path}: the model has segment embeddings, which stock fairseq RoBERTa lacks; "
                              "fine-tune its --hf-out export (examples/finetune_hf.py), which carries them as "
                              "token types")
    eps = model_args.get("layer_norm_eps", FAIRSEQ_LAYER_NORM_EPS)
    if eps != FAIRSEQ_LAYER_NORM_EPS:
        log(f"note: {path} was trained with LayerNorm epsilon {eps:g}; stock RoBERTa fine-tunes it with "
            f"{FAIRSEQ_LAYER_NORM_EPS:g} (its only value)")
    if EMBEDDING_KEY not in state["model"]:
        raise TokendropError(f"{path}: no {EMBEDDING_KEY}: not a RoBERTa encoder")
    if tokenizer_dir is None:
        here = os.path.dirname(os.path.abspath(path))
        if any(os.path.isfile(os.path.join(here, name)) for name in ("dict.txt", "vocab.txt")):
            tokenizer_dir = here
        else:
            tokenizer_dir = str(plain(state["cfg"]["task"]).get("data", "")).split(os.pathsep)[0]
    return Pretrained(path=os.path.abspath(path), arch_flags=shape_flags(model_args, path),
                      max_positions=int(model_args["max_positions"]),
                      embedding_rows=state["model"][EMBEDDING_KEY].shape[0],
                      needs_plugin=holds_namespace(state),
                      tokenizer_dir=tokenizer_dir)
