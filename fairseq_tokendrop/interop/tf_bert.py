"""TensorFlow BERT checkpoints -> Hugging Face ``BertForMaskedLM`` weights, config and token importance.

The layout is told from the variable names; three are known:

- ``tf1``: google-research BERT's names (``modeling.py``, ``run_pretraining.py``), as MLPerf's
  ``tf1_ckpt/model.ckpt-28252`` has them: ``bert/embeddings/{word,position,token_type}_embeddings``,
  ``bert/embeddings/LayerNorm/{gamma,beta}``, ``bert/encoder/layer_N/attention/self/{query,key,
  value}``, ``.../attention/output/{dense,LayerNorm}``, ``.../intermediate/dense``,
  ``.../output/{dense,LayerNorm}``, ``cls/predictions/transform/{dense,LayerNorm}``,
  ``cls/predictions/output_bias``; kernels are ``[in, out]``. The number of attention heads and the
  activation are not in the file: they come from the ``bert_config.json`` that goes with it, whose
  ``"hidden_act": "gelu"`` is google-research's ``modeling.gelu``, the tanh approximation (HF
  ``gelu_new``; HF's own converter maps it to the exact ``gelu``).
- ``tf2_bert``: a TF2 object-based checkpoint of TF Model Garden's ``BertEncoder`` (or
  ``BertEncoderV2``) with its ``MaskedLM`` head, as Model Garden's trainer or its TF1 converter
  saves it. Object paths differ between those encoders and between ways of saving
  (``encoder/layer_with_weights-4/...``, ``encoder/_transformer_layers/0/...``, the shared
  embedding under ``masked_lm/embedding_table``), so variables are known by the names the Keras
  layers gave them, which the checkpoint's object graph records (``transformer/layer_N/
  self_attention/query/kernel``, ``word_embeddings/embeddings``, ``cls/predictions/transform/
  dense/kernel``, ...; any scope before them is ignored). Attention kernels are
  ``[hidden, heads, head_dim]`` and ``[heads, head_dim, hidden]``, which also gives the head
  count. The activation is not recorded: Model Garden's default, ``tf_utils.get_activation
  ("gelu")`` = ``gelu(x, approximate=True)``, is assumed (HF ``gelu_new``).
- ``tf2_tokendrop``: the same for ``official.projects.token_dropping``'s ``TokenDropBertEncoder``,
  whose ``TokenImportanceWithMovingAvg`` adds ``importance_embed``: one score per vocab.txt id,
  returned as :attr:`TFBert.importance`.

Not carried: the pooler (``BertForMaskedLM`` has none), the next-sentence head, optimizer slots
and counters (``adam_m``/``adam_v``, ``.OPTIMIZER_SLOT``, ``global_step``, ...). Any other
variable, and any missing one, refuses the checkpoint with one line naming it. LayerNorm epsilon
is 1e-12 in all three (TF BERT and Model Garden).
"""
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np
import torch

from tokendrop_readers.tf_checkpoint import OBJECT_GRAPH, TFCheckpoint

from ..errors import TokendropError
from .hf_weights import BERT_LAYER_NORM_EPS

# google-research bert_config.json "hidden_act" -> HF hidden_act (modeling.get_activation)
TF1_ACTIVATIONS = {"gelu": "gelu_new", "relu": "relu"}
TF2_ACTIVATION = "gelu_new"
IMPORTANCE = "importance"

# (Model Garden's variable name, google-research's): {i} a layer number, {w} kernel/bias or gamma/beta.
SHARED_RULES = [
    ("word_embeddings/embeddings", "bert/embeddings/word_embeddings"),
    ("position_embedding/embeddings", "bert/embeddings/position_embeddings"),
    ("type_embeddings/embeddings", "bert/embeddings/token_type_embeddings"),
    ("embeddings/layer_norm/{w}", "bert/embeddings/LayerNorm/{w}"),
    ("transformer/layer_{i}/self_attention/query/{w}", "bert/encoder/layer_{i}/attention/self/query/{w}"),
    ("transformer/layer_{i}/self_attention/key/{w}", "bert/encoder/layer_{i}/attention/self/key/{w}"),
    ("transformer/layer_{i}/self_attention/value/{w}", "bert/encoder/layer_{i}/attention/self/value/{w}"),
    ("transformer/layer_{i}/self_attention/attention_output/{w}", "bert/encoder/layer_{i}/attention/output/dense/{w}"),
    ("transformer/layer_{i}/self_attention_layer_norm/{w}", "bert/encoder/layer_{i}/attention/output/LayerNorm/{w}"),
    ("transformer/layer_{i}/intermediate/{w}", "bert/encoder/layer_{i}/intermediate/dense/{w}"),
    ("transformer/layer_{i}/output/{w}", "bert/encoder/layer_{i}/output/dense/{w}"),
    ("transformer/layer_{i}/output_layer_norm/{w}", "bert/encoder/layer_{i}/output/LayerNorm/{w}"),
    ("pooler_transform/{w}", "bert/pooler/dense/{w}"),
    ("cls/predictions/transform/dense/{w}", "cls/predictions/transform/dense/{w}"),
    ("cls/predictions/transform/LayerNorm/{w}", "cls/predictions/transform/LayerNorm/{w}"),
    ("cls/predictions/output_bias/bias", "cls/predictions/output_bias"),
]
TF2_ONLY_RULES = [
    # Model Garden's next-sentence ClassificationHead, named next_sentence in its pretraining configs
    ("next_sentence/pooler_dense/{w}", "cls/seq_relationship/pooler_dense/{w}"),
    ("next_sentence/logits/{w}", "cls/seq_relationship/logits/{w}"),
    ("importance_embed", IMPORTANCE),
]
TF1_ONLY_NAMES = {"cls/seq_relationship/output_weights", "cls/seq_relationship/output_bias"}
WEIGHTS = "kernel|bias|gamma|beta"
DROPPED = {"the pooler": "bert/pooler/", "the next-sentence head": "cls/seq_relationship/"}
# Optimizer state and counters: google-research's AdamWeightDecayOptimizer and MLPerf's LAMB (adam_m, adam_v),
# tf.train.AdamOptimizer (Adam, Adam_1, beta1_power, beta2_power); the names HF's and NVIDIA's converters skip.
TF1_SKIPPED_LEAVES = {"adam_m", "adam_v", "Adam", "Adam_1", "AdamWeightDecayOptimizer",
                      "AdamWeightDecayOptimizer_1", "LAMB", "LAMB_1"}
TF1_SKIPPED_NAMES = {"global_step", "beta1_power", "beta2_power"}
# Object paths of what Model Garden's trainer saves besides the model (official/core/base_trainer.py).
TF2_SKIPPED = re.compile(r"(^|/)\.OPTIMIZER_SLOT/|^(optimizer|global_step|save_counter)/|^" + OBJECT_GRAPH + "$")


@dataclass
class TFBert:
    """A TF BERT checkpoint as ``BertForMaskedLM`` weights (tied decoder keys included) and config."""
    layout: str
    state_dict: Dict[str, torch.Tensor]
    config: dict
    importance: Optional[np.ndarray] = None  # float32 [vocab], vocab.txt order (tf2_tokendrop only)
    notes: List[str] = field(default_factory=list)


def _rule_pattern(template: str) -> str:
    return re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{w\}", f"(?P<w>{WEIGHTS})")


MODEL_GARDEN = [(re.compile(r"(?:^|/)" + _rule_pattern(tf2) + "$"), tf1)
                for tf2, tf1 in SHARED_RULES + TF2_ONLY_RULES]
GOOGLE = [re.compile(_rule_pattern(tf1)) for _tf2, tf1 in SHARED_RULES]


def _model_garden_name(tf1_name: str) -> str:
    """The Model Garden name of a google-research one, for messages about TF2 checkpoints."""
    for tf2, tf1 in SHARED_RULES:
        match = re.fullmatch(_rule_pattern(tf1), tf1_name)
        if match:
            return tf2.format(**match.groupdict())
    return tf1_name


def _canonical_tf2(keys: Iterable[str], full_names: Mapping[str, str], source: str) -> Dict[str, str]:
    """google-research name -> checkpoint key, from the object graph's variable names."""
    found: Dict[str, str] = {}
    for key in sorted(keys):
        if TF2_SKIPPED.search(key):
            continue
        name = full_names.get(key, "")
        for pattern, tf1 in MODEL_GARDEN:
            match = pattern.search(name)
            if match:
                canonical = tf1.format(**match.groupdict())
                if canonical in found:
                    raise TokendropError(f"{source}: {found[canonical]} and {key} are both {name}: more than one "
                                          "encoder or head in the checkpoint")
                found[canonical] = key
                break
        else:
            raise TokendropError(f"{source}: unknown variable {name or '(no name)'} ({key}) for a TF2 "
                                  "Model Garden BERT checkpoint")
    return found


def _tf1_known(name: str) -> bool:
    return name in TF1_ONLY_NAMES or any(pattern.fullmatch(name) for pattern in GOOGLE)


def _canonical_tf1(keys: Iterable[str], source: str) -> Dict[str, str]:
    found = {}
    for key in sorted(keys):
        if key in TF1_SKIPPED_NAMES or key.rsplit("/", 1)[-1] in TF1_SKIPPED_LEAVES:
            continue
        if not _tf1_known(key):
            raise TokendropError(f"{source}: unknown variable {key} for a TF1 BERT checkpoint")
        found[key] = key
    return found


def detect_layout(keys: Iterable[str], canonical: Mapping[str, str]) -> str:
    if OBJECT_GRAPH not in keys:
        return "tf1"
    return "tf2_tokendrop" if IMPORTANCE in canonical else "tf2_bert"


def _required(num_layers: int) -> List[str]:
    names = ["bert/embeddings/word_embeddings", "bert/embeddings/position_embeddings",
             "bert/embeddings/token_type_embeddings", "bert/embeddings/LayerNorm/gamma",
             "bert/embeddings/LayerNorm/beta"]
    for i in range(num_layers):
        p = f"bert/encoder/layer_{i}/"
        for module in ("attention/self/query", "attention/self/key", "attention/self/value",
                       "attention/output/dense", "intermediate/dense", "output/dense"):
            names += [p + module + "/kernel", p + module + "/bias"]
        for module in ("attention/output/LayerNorm", "output/LayerNorm"):
            names += [p + module + "/gamma", p + module + "/beta"]
    names += ["cls/predictions/transform/dense/kernel", "cls/predictions/transform/dense/bias",
              "cls/predictions/transform/LayerNorm/gamma", "cls/predictions/transform/LayerNorm/beta",
              "cls/predictions/output_bias"]
    return names


def _check_complete(canonical: Mapping[str, str], layout: str, source: str) -> int:
    """The number of layers; refuses a missing variable, naming it as the checkpoint would."""
    layers = {int(m.group(1)) for m in (re.match(r"bert/encoder/layer_(\d+)/", n) for n in canonical) if m}
    num_layers = max(layers) + 1 if layers else 0
    for name in _required(num_layers):
        if name not in canonical:
            shown = name if layout == "tf1" else _model_garden_name(name)
            raise TokendropError(f"{source}: missing variable {shown} for a {layout} BERT checkpoint")
    return num_layers


def _as_2d(name: str, kernel: np.ndarray) -> np.ndarray:
    """A kernel as [in, out]; Model Garden's attention output kernel is [heads, head_dim, out]."""
    if name.endswith("attention/output/dense/kernel"):
        return kernel.reshape(-1, kernel.shape[-1])
    return kernel.reshape(kernel.shape[0], -1)


def _hf_weights(get: Callable[[str], np.ndarray], num_layers: int) -> Dict[str, torch.Tensor]:
    out: Dict[str, np.ndarray] = {}

    def dense(src, dst):
        out[dst + ".weight"] = _as_2d(src + "/kernel", get(src + "/kernel")).T
        out[dst + ".bias"] = get(src + "/bias").reshape(-1)

    def norm(src, dst):
        out[dst + ".weight"], out[dst + ".bias"] = get(src + "/gamma"), get(src + "/beta")

    for part in ("word", "position", "token_type"):
        out[f"bert.embeddings.{part}_embeddings.weight"] = get(f"bert/embeddings/{part}_embeddings")
    norm("bert/embeddings/LayerNorm", "bert.embeddings.LayerNorm")
    for i in range(num_layers):
        src, dst = f"bert/encoder/layer_{i}/", f"bert.encoder.layer.{i}."
        for part in ("query", "key", "value"):
            dense(src + "attention/self/" + part, dst + "attention.self." + part)
        dense(src + "attention/output/dense", dst + "attention.output.dense")
        norm(src + "attention/output/LayerNorm", dst + "attention.output.LayerNorm")
        dense(src + "intermediate/dense", dst + "intermediate.dense")
        dense(src + "output/dense", dst + "output.dense")
        norm(src + "output/LayerNorm", dst + "output.LayerNorm")
    dense("cls/predictions/transform/dense", "cls.predictions.transform.dense")
    norm("cls/predictions/transform/LayerNorm", "cls.predictions.transform.LayerNorm")
    out["cls.predictions.bias"] = get("cls/predictions/output_bias").reshape(-1)
    # BertForMaskedLM's decoder is tied to the word embeddings and to cls.predictions.bias.
    out["cls.predictions.decoder.weight"] = out["bert.embeddings.word_embeddings.weight"]
    out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}


def _config(layout: str, shapes: Callable[[str], Tuple[int, ...]], num_layers: int,
            bert_config: Optional[Mapping], source: str) -> Tuple[dict, List[str]]:
    vocab, hidden = shapes("bert/embeddings/word_embeddings")
    config = {
        "architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": vocab, "hidden_size": hidden,
        "num_hidden_layers": num_layers,
        "intermediate_size": shapes("bert/encoder/layer_0/intermediate/dense/bias")[-1],
        "max_position_embeddings": shapes("bert/embeddings/position_embeddings")[0],
        "type_vocab_size": shapes("bert/embeddings/token_type_embeddings")[0],
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "layer_norm_eps": BERT_LAYER_NORM_EPS, "position_embedding_type": "absolute", "pad_token_id": 0,
        "tie_word_embeddings": True,
    }
    notes = []
    if layout == "tf1":
        if bert_config is None:
            raise TokendropError(f"{source}: a TF1 checkpoint does not record its number of attention heads "
                                  "or activation: give the bert_config.json that came with it")
        act = bert_config.get("hidden_act")
        if act not in TF1_ACTIVATIONS:
            raise TokendropError(f"bert_config.json: hidden_act {act!r} is not one of {sorted(TF1_ACTIVATIONS)}")
        checks = {"hidden_size": hidden, "vocab_size": vocab, "num_hidden_layers": num_layers,
                  "intermediate_size": config["intermediate_size"],
                  "max_position_embeddings": config["max_position_embeddings"],
                  "type_vocab_size": config["type_vocab_size"]}
        for key, value in checks.items():
            if key in bert_config and bert_config[key] != value:
                raise TokendropError(f"bert_config.json: {key} is {bert_config[key]} but {source} has {value}")
        config.update(num_attention_heads=bert_config["num_attention_heads"], hidden_act=TF1_ACTIVATIONS[act])
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range"):
            config[key] = bert_config.get(key, config[key])
        if act == "gelu":
            notes.append("hidden_act 'gelu' in a google-research bert_config.json is the tanh approximation: "
                         "HF gelu_new")
    else:
        config.update(num_attention_heads=shapes("bert/encoder/layer_0/attention/self/query/kernel")[1],
                      hidden_act=TF2_ACTIVATION)
        notes.append("a TF2 checkpoint does not record its activation: Model Garden's default tanh GELU is "
                     "assumed (HF gelu_new)")
    if hidden % config["num_attention_heads"]:
        raise TokendropError(f"{source}: hidden size {hidden} is not a multiple of "
                              f"{config['num_attention_heads']} attention heads")
    return config, notes


def tf_bert_to_hf(keys: Iterable[str], full_names: Mapping[str, str], read: Callable[[str], np.ndarray],
                  source: str, bert_config: Optional[Mapping] = None) -> TFBert:
    """Map a checkpoint given by its tensor names (TF2: with the object graph's ``full_names``) and a reader.

    Only the model's tensors are read, not the optimizer's.
    """
    keys = list(keys)
    if OBJECT_GRAPH in keys:
        canonical = _canonical_tf2(keys, full_names, source)
    else:
        if "bert/embeddings/word_embeddings" not in keys:
            raise TokendropError(f"{source}: missing variable bert/embeddings/word_embeddings, and no TF2 object "
                                  "graph: not a TF1 or TF2 BERT checkpoint")
        canonical = _canonical_tf1(keys, source)
    layout = detect_layout(keys, canonical)
    num_layers = _check_complete(canonical, layout, source)
    cache: Dict[str, np.ndarray] = {}

    def get(name):
        if name not in cache:
            cache[name] = np.asarray(read(canonical[name]))
        return cache[name]

    config, notes = _config(layout, lambda name: get(name).shape, num_layers, bert_config, source)
    state = _hf_weights(get, num_layers)
    importance = get(IMPORTANCE).astype(np.float32) if layout == "tf2_tokendrop" else None
    for what, prefix in DROPPED.items():
        count = sum(name.startswith(prefix) for name in canonical)
        if count:
            notes.append(f"{what} ({count} tensors) is dropped: BertForMaskedLM has no place for it")
    return TFBert(layout=layout, state_dict=state, config=config, importance=importance, notes=notes)


def read_tf_bert(path: str, bert_config: Optional[Mapping] = None) -> TFBert:
    """The BERT in the TF checkpoint at ``path`` (a prefix, its files, or a folder with a ``checkpoint`` file)."""
    checkpoint = TFCheckpoint(path)
    return tf_bert_to_hf(checkpoint.entries, checkpoint.variable_names(), checkpoint.read, checkpoint.prefix,
                         bert_config)
