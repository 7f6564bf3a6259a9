"""Export a (token-dropping) RoBERTa pretraining checkpoint for people who never install this plugin.

Outputs, any combination:

``--fairseq-out DIR``
    ``model.pt`` (stock ``--arch roberta_base``/``roberta_large`` cfg with the real dimensions,
    task ``masked_lm``, no plugin keys, no importance scores, no optimizer state unless
    ``--keep-optimizer``; plain containers only, so torch's ``weights_only`` loader reads it
    without any allowlist), ``dict.txt``, and the sentencepiece model as
    ``sentencepiece.bpe.model`` when the data dir has one::

        from fairseq.models.roberta import RobertaModel
        roberta = RobertaModel.from_pretrained(DIR, "model.pt", bpe="sentencepiece")
        roberta.fill_mask("The capital of France is <mask>.")

    (``bpe="sentencepiece"`` because ``from_pretrained`` defaults to GPT-2's BPE; fairseq picks up
    ``sentencepiece.bpe.model`` from DIR by that name, as for XLM-R.)

``--hf-out DIR``
    a Hugging Face model with the tokenizer its ids come from, for ``transformers`` alone::

        from transformers import pipeline
        fill = pipeline("fill-mask", model=DIR)
        fill(f"The capital of France is {fill.tokenizer.mask_token}.")

    A model trained on sentencepiece pieces (``prepare_corpus``) becomes a
    ``RobertaForMaskedLM`` over fairseq's dictionary ids with a ``tokenizer.json`` that gives
    the ids ``roberta.encode`` gives (plus ``dict.txt`` and ``sentencepiece.bpe.model``); one
    trained on a WordPiece ``vocab.txt`` (``convert_premasked``, ``import_hf`` of a BERT,
    ``prepare_corpus --tokenizer vocab.txt``) becomes a ``BertForMaskedLM`` with vocab.txt's ids
    and BERT's tokenizer, one trained on ``prepare_corpus --tokenizer tokenizer.json`` data a
    ``BertForMaskedLM`` with that tokenizer's ids and the tokenizer.json
    (``fairseq_tokendrop/interop/hf_export.py``). The directory appears whole or not at all.

``--save-importance PATH``
    the float32 token-importance scores, the tensor ``--init-token-importance`` reads.

The checkpoint is loaded with fairseq's own loader (torch ``weights_only`` left on; importing
the plugin allowlists ``argparse.Namespace``). ``dict.txt`` comes from the training data dir
recorded in the checkpoint, or ``--data``; so does the vocabulary: ``vocab.txt`` there (or
``--vocab``) for WordPiece, else ``spm.model``/``sentencepiece.bpe.model`` (or ``--spm-model``),
else ``tokenizer.json``.
"""
import argparse
import os
import shutil
from dataclasses import fields

import torch

import fairseq_tokendrop  # noqa: F401  (registers the plugin, allowlists Namespace for torch.load)
from fairseq_tokendrop.checkpoints.safe_loading import load_checkpoint
from fairseq import checkpoint_utils
from fairseq.criterions.masked_lm import MaskedLmLoss
from fairseq.models.roberta import RobertaModel
from fairseq.models.roberta.model import base_architecture
from fairseq.tasks.masked_lm import MaskedLMConfig

from fairseq_tokendrop.models.tokendrop_config import FAIRSEQ_LAYER_NORM_EPS
from fairseq_tokendrop.atomic_file import atomic_directory
from fairseq_tokendrop.checkpoints.checkpoint_io import atomic_torch_save, plain, stock_arch, without_importance
from fairseq_tokendrop.interop.hf_export import (HUB_SPM_NAME, SentencePieceVocabulary, TokenizerJsonVocabulary,
                                                 check_replaceable, write_hf_export)
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.method.importance import find_token_importance
from fairseq_tokendrop.commands.log import command_log
from fairseq_tokendrop.commands.model_vocabulary import (SPM_NAMES, add_vocabulary_args, find_data_files,
                                                         wordpiece_vocabulary)

FAIRSEQ_EXPORT_FILES = frozenset(("model.pt", "dict.txt", HUB_SPM_NAME))


log = command_log("export_checkpoint")


def stock_roberta_keys():
    """Every model option stock fairseq RoBERTa declares or fills in (read from fairseq itself)."""
    parser = argparse.ArgumentParser()
    RobertaModel.add_args(parser)
    defaults = argparse.Namespace()
    base_architecture(defaults)
    return ({a.dest for a in parser._actions} | set(vars(defaults))) - {"help"}


def stock_cfg(cfg, model_args, out_dir, spm_path):
    """The checkpoint's cfg, Namespace-free, naming only stock fairseq components."""
    cfg = plain(cfg)
    keep = stock_roberta_keys()
    arch = stock_arch(model_args.get("arch") or model_args.get("_name"))
    cfg["model"] = {"_name": arch, "arch": arch, **{k: v for k, v in model_args.items() if k in keep}}
    task_fields = {f.name for f in fields(MaskedLMConfig)}
    cfg["task"] = {**{k: v for k, v in cfg["task"].items() if k in task_fields},
                   "_name": "masked_lm", "data": os.path.abspath(out_dir)}
    cfg["criterion"] = {"_name": "masked_lm"}
    cfg["common"]["user_dir"] = None
    cfg["bpe"] = {"_name": "sentencepiece", "sentencepiece_model": os.path.abspath(spm_path)} if spm_path else None
    cfg["tokenizer"] = None
    return cfg


def export_fairseq(state, model, model_args, out_dir, dict_path, spm_path, keep_optimizer):
    history = plain(state["optimizer_history"])
    last = dict(history[-1], criterion_name=MaskedLmLoss.__name__)
    out = {
        "args": None,
        "cfg": stock_cfg(state["cfg"], model_args, out_dir, os.path.join(out_dir, HUB_SPM_NAME) if spm_path else None),
        "model": without_importance(model.state_dict()),
        "criterion": None,
        "task_state": {},
    }
    if keep_optimizer:
        # Adam & co. keep their state by parameter order, the same in stock roberta.
        out["optimizer_history"] = history[:-1] + [last]
        out["last_optimizer_state"] = state["last_optimizer_state"]
        out["extra_state"] = {k: v for k, v in state["extra_state"].items() if k != "metrics"}
    else:
        out["optimizer_history"] = [{k: last[k] for k in ("criterion_name", "optimizer_name",
                                                          "lr_scheduler_state", "num_updates")}]
        out["last_optimizer_state"] = None
        out["extra_state"] = {"train_iterator": state["extra_state"]["train_iterator"]}
    with atomic_directory(out_dir) as tmp:
        shutil.copyfile(dict_path, os.path.join(tmp, "dict.txt"))
        if spm_path:
            shutil.copyfile(spm_path, os.path.join(tmp, HUB_SPM_NAME))
        torch.save(out, os.path.join(tmp, "model.pt"))
    log(f"wrote {out_dir}/model.pt (arch {out['cfg']['model']['arch']}"
        f"{', with optimizer state' if keep_optimizer else ''}), dict.txt"
        + (f", {HUB_SPM_NAME}" if spm_path else ""))
    eps = model_args.get("layer_norm_eps", FAIRSEQ_LAYER_NORM_EPS)
    if eps != FAIRSEQ_LAYER_NORM_EPS:
        log(f"note: the model's LayerNorms use epsilon {eps:g} (--layer-norm-eps); stock fairseq RoBERTa builds "
            f"them with {FAIRSEQ_LAYER_NORM_EPS:g} and has no option, so its outputs move slightly (by about "
            "eps / (2 variance) of each LayerNorm input); --hf-out keeps the model's value")


def hf_tokenizer_source(data_dir, args, spm_path):
    """What the HF export's tokenizer is made from; one line naming the missing file when there is none."""
    wordpiece = wordpiece_vocabulary(data_dir, args.vocab, args.lowercase, log)
    if wordpiece is not None:
        return wordpiece
    if spm_path is None and os.path.isfile(os.path.join(data_dir, "tokenizer.json")):
        return TokenizerJsonVocabulary(os.path.join(data_dir, "tokenizer.json"))  # prepare_corpus --tokenizer
    if spm_path is None:
        raise TokendropError(f"--hf-out needs the model's tokenizer: no {' or '.join(SPM_NAMES)} or tokenizer.json in "
                          f"{data_dir} (give --spm-model, or --vocab for a WordPiece vocab.txt)")
    return SentencePieceVocabulary(spm_path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a fairseq-train checkpoint (checkpoint_last.pt, ...)")
    parser.add_argument("--fairseq-out", metavar="DIR", help="write a stock fairseq RoBERTa export here")
    parser.add_argument("--hf-out", metavar="DIR", help="write a Hugging Face model and its tokenizer here "
                        "(RobertaForMaskedLM for sentencepiece, BertForMaskedLM for a WordPiece vocab.txt)")
    parser.add_argument("--save-importance", metavar="PATH",
                        help="write the token-importance scores (for --init-token-importance) here")
    add_vocabulary_args(parser, "to ship", "--hf-out writes a BERT")
    parser.add_argument("--keep-optimizer", action="store_true",
                        help="keep the optimizer state in the fairseq export (to continue pretraining)")
    args = parser.parse_args(argv)
    if not (args.fairseq_out or args.hf_out or args.save_importance):
        parser.error("nothing to do: give --fairseq-out, --hf-out and/or --save-importance")
    if args.fairseq_out and args.hf_out and os.path.abspath(args.fairseq_out) == os.path.abspath(args.hf_out):
        parser.error("give --fairseq-out and --hf-out different directories")
    run(args)


def run(args):
    if not os.path.isfile(args.checkpoint):
        raise TokendropError(f"no such checkpoint: {args.checkpoint}")
    log(f"loading {args.checkpoint}")
    try:
        state = load_checkpoint(args.checkpoint)
    except Exception as e:
        raise TokendropError(f"cannot read {args.checkpoint} as a fairseq checkpoint ({type(e).__name__}: {e})")
    if state.get("cfg") is None or "model" not in state:
        raise TokendropError(f"{args.checkpoint} has no cfg/model: not a fairseq-train checkpoint")
    if args.fairseq_out:
        check_replaceable(args.fairseq_out, "--fairseq-out", FAIRSEQ_EXPORT_FILES)
    if args.hf_out:
        check_replaceable(args.hf_out, "--hf-out")
    data_dir = args.data or state["cfg"].task.data.split(os.pathsep)[0]
    dict_path, spm_path = find_data_files(data_dir, args.spm_model)
    vocabulary = hf_tokenizer_source(data_dir, args, spm_path) if args.hf_out else None
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [args.checkpoint], arg_overrides={"data": os.path.dirname(os.path.abspath(dict_path))})
    model = models[0].eval()
    model_args = plain(state["cfg"].model)
    model_args["max_positions"] = model.max_positions()
    if args.fairseq_out and model_args.get("num_segment"):
        raise TokendropError(f"--fairseq-out: the model has segment embeddings (--num-segment "
                          f"{model_args['num_segment']}), which stock fairseq RoBERTa lacks; --hf-out carries them "
                          "(token types)")

    if args.save_importance:
        try:
            scores = find_token_importance(model).get()
        except TypeError:
            raise TokendropError(f"--save-importance: {args.checkpoint} has no token-importance scores "
                              "(not a tokendrop_roberta checkpoint)")
        atomic_torch_save(scores, args.save_importance)
        log(f"wrote {args.save_importance} (float32 [{scores.numel()}], for --init-token-importance)")
    if args.hf_out:
        log(f"Hugging Face export to {args.hf_out}")
        write_hf_export(args.hf_out, model.state_dict(), model_args, task.source_dictionary.symbols, dict_path,
                        vocabulary, log)
    if args.fairseq_out:
        export_fairseq(state, model, model_args, args.fairseq_out, dict_path, spm_path, args.keep_optimizer)


if __name__ == "__main__":
    main()
