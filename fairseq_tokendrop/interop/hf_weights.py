"""Weight names and shapes between fairseq RoBERTa and Hugging Face BERT/RoBERTa.

Pure functions on state dicts and configs (plain dicts, as in ``config.json``);
no transformers import. Facts they rest on:

- fairseq RoBERTa (``fairseq/models/roberta/model.py``, ``TransformerEncoder``)
  is post-LN with a LayerNorm on the embeddings, unscaled token embeddings,
  learned positions and an LM head ``dense -> activation -> LayerNorm ->
  tied decoder + bias``: the layout of HF ``RobertaForMaskedLM`` and
  ``BertForMaskedLM`` (``RobertaLMHead`` / ``BertLMPredictionHead``). HF's
  RoBERTa head always applies erf-GELU; BERT's uses ``hidden_act``.
- fairseq positions are ``padding_idx + 1 + i`` for the i-th real token
  (``utils.make_positions``, padding_idx 1), so the table has
  ``max_positions + 2`` rows. HF RoBERTa does the same with ``pad_token_id``
  (``create_position_ids_from_input_ids``); HF BERT uses ``i``.
- stock fairseq has no token types; HF adds ``token_type_embeddings[0]`` to
  every token of a single-segment input, so that row folds into the positions.
  The plugin's segment embeddings (``--num-segment``) sit where HF adds token
  types: on the token embeddings, before the positions and the embedding
  LayerNorm. Exports carry them as the token types; an import keeps the table
  as them with ``keep_segments``.
- fairseq's LayerNorm eps is 1e-5; the plugin's ``--layer-norm-eps`` carries BERT's 1e-12 both ways.
"""
from typing import Dict, List, Mapping, Tuple

import torch
from torch import Tensor

from ..errors import TokendropError
from ..method.pins import PIN
from ..models.tokendrop_config import FAIRSEQ_LAYER_NORM_EPS

FAIRSEQ_ENCODER = "encoder.sentence_encoder."
FAIRSEQ_LM_HEAD = "encoder.lm_head."
FAIRSEQ_SEGMENTS = FAIRSEQ_ENCODER + "embed_segments.weight"  # --num-segment's table (token_dropping_encoder.py)
PADDING_IDX = 1  # fairseq Dictionary's <pad>
UNK_IDX = 3  # fairseq Dictionary's <unk>
# google-research BERT's and TF Model Garden's LayerNorm epsilon; also HF BertConfig's default.
BERT_LAYER_NORM_EPS = 1e-12
# BERT's two segments: a BERT user fine-tuning on sentence pairs finds the second one's row.
BERT_TYPE_VOCAB_SIZE = 2
# Output bias of a dictionary entry the HF model has no row for: exp(-1e4 - max logit) is 0, also in fp16.
NO_COUNTERPART_BIAS = -1e4

# Inside one transformer layer: fairseq module -> HF module (each has .weight and .bias).
LAYER_MODULES = (
    ("self_attn.q_proj", "attention.self.query"),
    ("self_attn.k_proj", "attention.self.key"),
    ("self_attn.v_proj", "attention.self.value"),
    ("self_attn.out_proj", "attention.output.dense"),
    ("self_attn_layer_norm", "attention.output.LayerNorm"),
    ("fc1", "intermediate.dense"),
    ("fc2", "output.dense"),
    ("final_layer_norm", "output.LayerNorm"),
)

# fairseq --activation-fn <-> HF hidden_act (fairseq's gelu_accurate is the tanh form, HF's gelu_new).
ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "relu": "relu"}
HF_ACTIVATIONS = {**{hf: fs for fs, hf in ACTIVATIONS.items()}, "gelu_pytorch_tanh": "gelu_accurate"}

# Per HF model type: the encoder prefix, and the LM head's dense, LayerNorm, decoder and bias.
HF_LAYOUT = {
    "roberta": dict(base="roberta.", dense="lm_head.dense", norm="lm_head.layer_norm",
                    decoder="lm_head.decoder", bias="lm_head.bias"),
    "bert": dict(base="bert.", dense="cls.predictions.transform.dense",
                 norm="cls.predictions.transform.LayerNorm", decoder="cls.predictions.decoder",
                 bias="cls.predictions.bias"),
}
# Weights of a pretraining checkpoint that a masked-LM model has no place for.
HF_DROPPED = {"pooler": "bert.pooler.", "next-sentence head": "cls.seq_relationship."}


def _linear(sd: Mapping[str, Tensor], src: str, dst: str, out: Dict[str, Tensor], used: set) -> None:
    for p in ("weight", "bias"):
        if f"{src}.{p}" not in sd:
            raise TokendropError(f"missing weight {src}.{p}")
        out[f"{dst}.{p}"] = sd[f"{src}.{p}"]
        used.add(f"{src}.{p}")


def _check_all_used(sd: Mapping[str, Tensor], used: set, ignorable=lambda k: False) -> None:
    left = sorted(k for k in sd if k not in used and not ignorable(k))
    if left:
        raise TokendropError(f"{len(left)} weight(s) with no counterpart: {', '.join(left[:8])}"
                              + (" ..." if len(left) > 8 else ""))


# ---------------------------------------------------------------- fairseq -> HF RoBERTa / BERT

def check_exportable(model_args: Mapping, model_type: str = "roberta") -> None:
    """Refuse fairseq RoBERTa variants that ``RobertaForMaskedLM``/``BertForMaskedLM`` cannot express."""
    def arg(name, default=None):
        return model_args.get(name, default)

    problems = []
    if arg("encoder_normalize_before"):
        problems.append("encoder_normalize_before=True (pre-LN; HF's BERT and RoBERTa are post-LN)")
    if not arg("layernorm_embedding", True):
        problems.append("layernorm_embedding=False")
    if arg("untie_weights_roberta"):
        problems.append("untie_weights_roberta=True")
    if arg("no_token_positional_embeddings") or not arg("encoder_learned_pos", True):
        problems.append("no learned positional embeddings")
    if arg("activation_fn", "gelu") not in ACTIVATIONS:
        problems.append(f"activation_fn={arg('activation_fn')} (HF has {sorted(HF_ACTIVATIONS)})")
    elif model_type == "roberta" and arg("activation_fn", "gelu") != "gelu":
        problems.append(f"activation_fn={arg('activation_fn')} (HF's RoBERTa LM head is always gelu)")
    if arg("encoder_layers_to_keep"):
        problems.append("encoder_layers_to_keep (pruned layers)")
    if problems:
        name = {"roberta": "RobertaForMaskedLM", "bert": "BertForMaskedLM"}[model_type]
        raise TokendropError(f"cannot export to HF {name}: " + "; ".join(problems))


def _hf_config(model_args: Mapping, model_type: str, vocab_size: int, max_position_embeddings: int) -> dict:
    check_exportable(model_args, model_type)
    return {
        "architectures": [{"roberta": "RobertaForMaskedLM", "bert": "BertForMaskedLM"}[model_type]],
        "model_type": model_type,
        "vocab_size": vocab_size,
        "hidden_size": model_args["encoder_embed_dim"],
        "num_hidden_layers": model_args["encoder_layers"],
        "num_attention_heads": model_args["encoder_attention_heads"],
        "intermediate_size": model_args["encoder_ffn_embed_dim"],
        "hidden_act": ACTIVATIONS[model_args.get("activation_fn", "gelu")],
        "hidden_dropout_prob": model_args.get("dropout", 0.1),
        "attention_probs_dropout_prob": model_args.get("attention_dropout", 0.1),
        "max_position_embeddings": max_position_embeddings,
        "initializer_range": 0.02,
        "layer_norm_eps": model_args.get("layer_norm_eps", FAIRSEQ_LAYER_NORM_EPS),
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }


def hf_roberta_config(model_args: Mapping, vocab_size: int, dictionary_size: int = None) -> dict:
    """``config.json`` of the HF ``RobertaForMaskedLM`` equal to this fairseq RoBERTa.

    ``dictionary_size``: when the HF vocabulary runs past the fairseq dictionary (sentencepiece
    pieces it lacks, see ``sentencepiece_tokenizer``), how many ids are the dictionary's, recorded
    as ``fairseq_dictionary_size`` so that an import drops the rest.
    """
    config = _hf_config(model_args, "roberta", vocab_size, model_args["max_positions"] + PADDING_IDX + 1)
    config.update(type_vocab_size=type_vocab_size(model_args, 1), bos_token_id=0, pad_token_id=PADDING_IDX,
                  eos_token_id=2)
    if dictionary_size is not None and dictionary_size != vocab_size:
        config["fairseq_dictionary_size"] = dictionary_size
    return config


def hf_bert_config(model_args: Mapping, vocab_size: int, pad_token_id: int) -> dict:
    """``config.json`` of the HF ``BertForMaskedLM`` equal to this fairseq RoBERTa (BERT counts positions from 0)."""
    config = _hf_config(model_args, "bert", vocab_size, model_args["max_positions"])
    config.update(type_vocab_size=type_vocab_size(model_args, BERT_TYPE_VOCAB_SIZE), pad_token_id=pad_token_id)
    return config


def _encoder_to_hf(sd: Mapping[str, Tensor], num_layers: int, base: str, out: Dict[str, Tensor], used: set) -> None:
    """The embedding LayerNorm and the transformer layers, named as in HF's BERT and RoBERTa alike."""
    e = FAIRSEQ_ENCODER
    _linear(sd, e + "layernorm_embedding", base + "embeddings.LayerNorm", out, used)
    for i in range(num_layers):
        for fs, hf in LAYER_MODULES:
            _linear(sd, f"{e}layers.{i}.{fs}", f"{base}encoder.layer.{i}.{hf}", out, used)


def _head_to_hf(sd: Mapping[str, Tensor], model_type: str, out: Dict[str, Tensor], used: set) -> None:
    """The LM head's dense and LayerNorm; the decoder stays tied to the word embeddings (not written,
    as ``save_pretrained`` leaves tied weights out)."""
    lay = HF_LAYOUT[model_type]
    _linear(sd, FAIRSEQ_LM_HEAD + "dense", lay["dense"], out, used)
    _linear(sd, FAIRSEQ_LM_HEAD + "layer_norm", lay["norm"], out, used)
    if not torch.equal(sd[FAIRSEQ_LM_HEAD + "weight"], sd[FAIRSEQ_ENCODER + "embed_tokens.weight"]):
        raise TokendropError("encoder.lm_head.weight differs from the token embeddings (untied head)")
    used.add(FAIRSEQ_LM_HEAD + "weight")


def _finish(sd: Mapping[str, Tensor], used: set, out: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Every fairseq weight must have found its place (the rows and bias by the caller)."""
    used |= {FAIRSEQ_ENCODER + "embed_tokens.weight", FAIRSEQ_ENCODER + "embed_positions.weight",
             FAIRSEQ_LM_HEAD + "bias", FAIRSEQ_SEGMENTS}
    _check_all_used(sd, used, ignorable=lambda k: k.endswith(".version"))
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def fairseq_to_hf_roberta(sd: Mapping[str, Tensor], num_layers: int, unknown_rows: int = 0) -> Dict[str, Tensor]:
    """A fairseq RoBERTa state dict -> ``RobertaForMaskedLM`` weights (tied decoder keys left out,
    as ``save_pretrained`` does). Every fairseq weight must find its place.

    ``unknown_rows``: rows appended after the dictionary's for tokens the dictionary lacks: each
    gets ``<unk>``'s embedding, so the model reads them as ``<unk>``, and the output bias
    ``NO_COUNTERPART_BIAS``, so they are never predicted and the distribution over the
    dictionary's ids is the fairseq model's.
    """
    e, used, out = FAIRSEQ_ENCODER, set(), {}
    emb, bias = sd[e + "embed_tokens.weight"], sd[FAIRSEQ_LM_HEAD + "bias"]
    out["roberta.embeddings.word_embeddings.weight"] = torch.cat([emb, emb[UNK_IDX].expand(unknown_rows, -1)])
    out["lm_head.bias"] = torch.cat([bias, bias.new_full((unknown_rows,), NO_COUNTERPART_BIAS)])
    out["roberta.embeddings.position_embeddings.weight"] = sd[e + "embed_positions.weight"]
    out["roberta.embeddings.token_type_embeddings.weight"] = token_type_table(sd, rows=1)
    _encoder_to_hf(sd, num_layers, "roberta.", out, used)
    _head_to_hf(sd, "roberta", out, used)
    return _finish(sd, used, out)


def token_type_table(sd: Mapping[str, Tensor], rows: int) -> Tensor:
    """HF's token-type embeddings: the model's segment table (``--num-segment``), which fairseq adds
    where BERT and RoBERTa add token types (to the word embeddings, before the positions and the
    embedding LayerNorm). A model without one gets ``rows`` zero rows: HF then adds nothing for any
    segment, as the model does."""
    if FAIRSEQ_SEGMENTS in sd:
        return sd[FAIRSEQ_SEGMENTS]
    emb = sd[FAIRSEQ_ENCODER + "embed_tokens.weight"]
    return emb.new_zeros(rows, emb.size(1))


def type_vocab_size(model_args: Mapping, default: int) -> int:
    return model_args.get("num_segment") or default


def fairseq_to_hf_bert(sd: Mapping[str, Tensor], num_layers: int, rows: Tensor) -> Dict[str, Tensor]:
    """A fairseq RoBERTa state dict -> ``BertForMaskedLM`` weights in a WordPiece vocabulary's order.

    Args:
        rows: long ``[len(vocab.txt)]``, ``rows[wordpiece_id] = fairseq_id``
            (``wordpiece_dictionary.wordpiece_to_fairseq``). fairseq's ``<pad>``, which no
            wordpiece maps to, has no BERT row: its output bias is not carried.
    BERT position i is fairseq's row ``padding_idx + 1 + i``; the rows before it are never used.
    """
    e, used, out = FAIRSEQ_ENCODER, set(), {}
    out["bert.embeddings.word_embeddings.weight"] = sd[e + "embed_tokens.weight"][rows]
    out["cls.predictions.bias"] = sd[FAIRSEQ_LM_HEAD + "bias"][rows]
    out["bert.embeddings.position_embeddings.weight"] = sd[e + "embed_positions.weight"][PADDING_IDX + 1:]
    out["bert.embeddings.token_type_embeddings.weight"] = token_type_table(sd, rows=BERT_TYPE_VOCAB_SIZE)
    _encoder_to_hf(sd, num_layers, "bert.", out, used)
    _head_to_hf(sd, "bert", out, used)
    return _finish(sd, used, out)


# ---------------------------------------------------------------- HF BERT/RoBERTa -> fairseq

def fairseq_model_args(hf_config: Mapping) -> dict:
    """The ``tokendrop_roberta`` arguments equal to an HF BERT/RoBERTa config."""
    kind = hf_config.get("model_type")
    if kind not in HF_LAYOUT:
        raise TokendropError(f"config.json: model_type {kind!r} is not one of {sorted(HF_LAYOUT)}")
    act = hf_config.get("hidden_act", "gelu")
    if act not in HF_ACTIVATIONS:
        raise TokendropError(f"config.json: hidden_act {act!r} has no fairseq counterpart "
                              f"(supported: {sorted(HF_ACTIVATIONS)})")
    if kind == "roberta" and HF_ACTIVATIONS[act] != "gelu":
        raise TokendropError(f"config.json: hidden_act {act!r}: HF's RoBERTa LM head applies gelu "
                              "regardless, fairseq's uses the layers' activation")
    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise TokendropError(f"config.json: position_embedding_type "
                              f"{hf_config['position_embedding_type']!r}; only 'absolute' maps onto fairseq")
    return dict(
        encoder_layers=hf_config["num_hidden_layers"],
        encoder_embed_dim=hf_config["hidden_size"],
        encoder_ffn_embed_dim=hf_config["intermediate_size"],
        encoder_attention_heads=hf_config["num_attention_heads"],
        max_positions=hf_config["max_position_embeddings"] - position_offset(hf_config),
        activation_fn=HF_ACTIVATIONS[act],
        dropout=hf_config.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf_config.get("attention_probs_dropout_prob", 0.1),
        encoder_normalize_before=False,
        layernorm_embedding=True,
        untie_weights_roberta=False,
        layer_norm_eps=hf_config.get("layer_norm_eps", BERT_LAYER_NORM_EPS),
    )


def _rows(table: Tensor, perm: Tensor, fill: float) -> Tensor:
    """``table[perm]`` along the first dimension, ``fill`` where ``perm`` is -1."""
    known = perm >= 0
    out = table.new_full((perm.numel(),) + tuple(table.shape[1:]), fill)
    out[known] = table[perm[known]]
    return out


def position_offset(hf_config: Mapping) -> int:
    """Rows of the HF position table before the first real token's position."""
    if hf_config["model_type"] == "roberta":
        return hf_config.get("pad_token_id", PADDING_IDX) + 1
    return 0


def importance_to_fairseq(scores: Tensor, perm: Tensor) -> Tensor:
    """Per-id scores in the HF vocabulary's order -> float32 in fairseq dictionary order (``perm`` as below).

    An entry with no HF row (fairseq's ``<pad>`` under a BERT vocabulary) gets the deny pin, as
    padding has in TF Model Garden's token dropping.
    """
    return _rows(scores.float(), perm, -PIN)


def hf_to_fairseq(hf_sd: Mapping[str, Tensor], hf_config: Mapping, perm: Tensor,
                  keep_segments: bool = False) -> Tuple[Dict[str, Tensor], List[str]]:
    """HF ``BertForMaskedLM``/``BertForPreTraining``/``RobertaForMaskedLM`` weights -> fairseq RoBERTa.

    Args:
        perm: long ``[V]``, ``perm[fairseq_id] = hf_id``: the vocabulary order of the fairseq
            dictionary (special tokens on fairseq's ids, ``<mask>`` last); ``-1`` for an entry
            the HF model has no row for (fairseq's ``<pad>`` under a BERT vocabulary, whose
            ``[PAD]`` is a token of its own). Such an entry gets a zero embedding and the output
            bias ``NO_COUNTERPART_BIAS``: its probability is 0 in fp32 and fp16, so the
            imported model's distribution over the HF vocabulary is the HF model's.
        keep_segments: the token-type table becomes ``embed_segments`` (a model built with
            ``num_segment`` = its rows) instead of folding its row 0 into the positions.
    Returns the state dict (``version`` buffers left to the loading model) and notes to log.
    """
    kind = hf_config["model_type"]
    lay = HF_LAYOUT[kind]
    b, e = lay["base"], FAIRSEQ_ENCODER
    used, out, notes = set(), {}, []
    emb_key, pos_key, type_key = (b + f"embeddings.{n}.weight" for n in
                                  ("word_embeddings", "position_embeddings", "token_type_embeddings"))
    for key in (emb_key, pos_key, type_key):
        if key not in hf_sd:
            raise TokendropError(f"missing weight {key}")
    emb = hf_sd[emb_key]
    if int(perm.max()) >= emb.size(0):
        raise TokendropError(f"the vocabulary has ids up to {int(perm.max())} but {emb_key} has "
                              f"{emb.size(0)} rows")
    known = perm >= 0
    if int(known.sum()) < emb.size(0):
        notes.append(f"{emb.size(0) - int(known.sum())} embedding row(s) beyond the vocabulary are dropped")
    if not known.all():
        notes.append(f"{int((~known).sum())} dictionary entr(ies) with no HF row (fairseq's <pad>: BERT's [PAD] "
                     f"is a token) get a zero embedding and output bias {NO_COUNTERPART_BIAS:g}")
    out[e + "embed_tokens.weight"] = _rows(emb, perm, 0.0)

    pos, types = hf_sd[pos_key], hf_sd[type_key]
    offset = position_offset(hf_config)
    table = pos.new_zeros(pos.size(0) - offset + PADDING_IDX + 1, pos.size(1))
    if keep_segments:
        table[PADDING_IDX + 1:] = pos[offset:]
        out[FAIRSEQ_SEGMENTS] = types
    else:
        # The token-type-0 row is added to every token of a single-segment input in HF.
        table[PADDING_IDX + 1:] = pos[offset:] + types[0]
        if types.size(0) > 1:
            notes.append(f"token-type rows 1..{types.size(0) - 1} are dropped (no segment embeddings without "
                         "keeping them); row 0 is folded into the positions")
    out[e + "embed_positions.weight"] = table
    used |= {emb_key, pos_key, type_key}

    _linear(hf_sd, b + "embeddings.LayerNorm", e + "layernorm_embedding", out, used)
    for i in range(fairseq_model_args(hf_config)["encoder_layers"]):
        for fs, hf in LAYER_MODULES:
            _linear(hf_sd, f"{b}encoder.layer.{i}.{hf}", f"{e}layers.{i}.{fs}", out, used)

    _linear(hf_sd, lay["dense"], FAIRSEQ_LM_HEAD + "dense", out, used)
    _linear(hf_sd, lay["norm"], FAIRSEQ_LM_HEAD + "layer_norm", out, used)
    bias = hf_sd.get(lay["bias"], hf_sd.get(lay["decoder"] + ".bias"))
    if bias is None:
        raise TokendropError(f"missing weight {lay['bias']} (the MLM head's output bias)")
    out[FAIRSEQ_LM_HEAD + "bias"] = _rows(bias, perm, NO_COUNTERPART_BIAS)
    out[FAIRSEQ_LM_HEAD + "weight"] = out[e + "embed_tokens.weight"]
    decoder = hf_sd.get(lay["decoder"] + ".weight")
    if decoder is not None and not torch.equal(decoder, emb):
        raise TokendropError(f"{lay['decoder']}.weight differs from {emb_key}: an untied MLM decoder "
                              "is not supported")
    used |= {lay["bias"], lay["decoder"] + ".weight", lay["decoder"] + ".bias"}

    for what, prefix in HF_DROPPED.items():
        dropped = [k for k in hf_sd if k.startswith(prefix)]
        if dropped:
            notes.append(f"the {what} ({prefix}*, {len(dropped)} tensors) is dropped")
            used |= set(dropped)
    _check_all_used(hf_sd, used, ignorable=lambda k: k.endswith("position_ids"))
    return {k: v.detach().clone().contiguous() for k, v in out.items()}, notes
