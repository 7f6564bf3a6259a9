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
    ``config.json`` + ``model.safetensors`` for ``transformers.RobertaForMaskedLM``, plus
    ``dict.txt`` and the sentencepiece model. Token ids are fairseq dictionary ids (``<s>`` 0,
    ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` last): encode with the fairseq export's
    ``roberta.encode(text)``, or with sentencepiece pieces looked up in ``dict.txt``.

``--save-importance PATH``
    the float32 token-importance scores, the tensor ``--init-token-importance`` reads.

The checkpoint is loaded with fairseq's own loader (torch ``weights_only`` left on; importing
the plugin allowlists ``argparse.Namespace``). ``dict.txt`` comes from the training data dir
recorded in the checkpoint, or ``--data``.
"""
import argparse
import json
import os
import shutil
import sys
from dataclasses import fields

import fairseq_tokendrop  # noqa: F401  (registers the plugin, allowlists Namespace for torch.load)
from fairseq_tokendrop.checkpoints.safe_loading import load_checkpoint
from fairseq import checkpoint_utils
from fairseq.criterions.masked_lm import MaskedLmLoss
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq.models.roberta import RobertaModel
from fairseq.models.roberta.model import base_architecture
from fairseq.tasks.masked_lm import MaskedLMConfig

from fairseq_tokendrop.atomic_file import atomic_path
from fairseq_tokendrop.checkpoints.checkpoint_io import atomic_torch_save, plain, without_importance
from fairseq_tokendrop.checkpoints.hf_weights import ConversionError, fairseq_to_hf_roberta, hf_roberta_config
from fairseq_tokendrop.method.importance import find_token_importance
from fairseq_tokendrop.commands.log import command_log

SPM_NAMES = ("spm.model", "sentencepiece.bpe.model")  # prepare_corpus.py's name, fairseq hub's name
HUB_SPM_NAME = "sentencepiece.bpe.model"


class ExportError(Exception):
    pass


log = command_log("export_checkpoint")


def stock_roberta_keys():
    """Every model option stock fairseq RoBERTa declares or fills in (read from fairseq itself)."""
    parser = argparse.ArgumentParser()
    RobertaModel.add_args(parser)
    defaults = argparse.Namespace()
    base_architecture(defaults)
    return ({a.dest for a in parser._actions} | set(vars(defaults))) - {"help"}


def stock_arch(arch):
    """``tokendrop_roberta_large`` -> ``roberta_large``; anything else -> a stock arch of that name or roberta_base."""
    name = arch.replace("tokendrop_", "", 1)
    model = ARCH_MODEL_REGISTRY.get(name)
    return name if model is not None and model.__module__.startswith("fairseq.") else "roberta_base"


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


def copy_atomic(src, dst):
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def copy_vocab_files(out_dir, dict_path, spm_path):
    copy_atomic(dict_path, os.path.join(out_dir, "dict.txt"))
    if spm_path:
        copy_atomic(spm_path, os.path.join(out_dir, HUB_SPM_NAME))
        return os.path.join(out_dir, HUB_SPM_NAME)
    return None


def export_fairseq(state, model, model_args, out_dir, dict_path, spm_path, keep_optimizer):
    os.makedirs(out_dir, exist_ok=True)
    exported_spm = copy_vocab_files(out_dir, dict_path, spm_path)
    history = plain(state["optimizer_history"])
    last = dict(history[-1], criterion_name=MaskedLmLoss.__name__)
    out = {
        "args": None,
        "cfg": stock_cfg(state["cfg"], model_args, out_dir, exported_spm),
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
    atomic_torch_save(out, os.path.join(out_dir, "model.pt"))
    log(f"wrote {out_dir}/model.pt (arch {out['cfg']['model']['arch']}"
        f"{', with optimizer state' if keep_optimizer else ''}), dict.txt"
        + (f", {HUB_SPM_NAME}" if exported_spm else ""))


def export_hf(model, model_args, vocab_size, out_dir, dict_path, spm_path):
    from safetensors.torch import save_file

    config = hf_roberta_config(model_args, vocab_size)
    tensors = fairseq_to_hf_roberta(model.state_dict(), model_args["encoder_layers"])
    os.makedirs(out_dir, exist_ok=True)
    with atomic_path(os.path.join(out_dir, "model.safetensors")) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})
    with atomic_path(os.path.join(out_dir, "config.json")) as tmp:
        with open(tmp, "w") as handle:
            json.dump(config, handle, indent=2)
    copy_vocab_files(out_dir, dict_path, spm_path)
    log(f"wrote {out_dir}/config.json, model.safetensors, dict.txt (ids are fairseq dictionary ids)")


def find_data_files(data_dir, spm_model):
    dict_path = os.path.join(data_dir, "dict.txt")
    if not os.path.isfile(dict_path):
        raise ExportError(f"no dict.txt in the data dir {data_dir} (give the training data dir with --data)")
    if spm_model:
        if not os.path.isfile(spm_model):
            raise ExportError(f"--spm-model: no such file: {spm_model}")
        return dict_path, spm_model
    found = [os.path.join(data_dir, n) for n in SPM_NAMES if os.path.isfile(os.path.join(data_dir, n))]
    return dict_path, (found[0] if found else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a fairseq-train checkpoint (checkpoint_last.pt, ...)")
    parser.add_argument("--fairseq-out", metavar="DIR", help="write a stock fairseq RoBERTa export here")
    parser.add_argument("--hf-out", metavar="DIR", help="write a Hugging Face RobertaForMaskedLM here")
    parser.add_argument("--save-importance", metavar="PATH",
                        help="write the token-importance scores (for --init-token-importance) here")
    parser.add_argument("--data", metavar="DIR", help="the training data dir holding dict.txt "
                        "(default: the one recorded in the checkpoint)")
    parser.add_argument("--spm-model", metavar="PATH", help="sentencepiece model to ship (default: "
                        "spm.model or sentencepiece.bpe.model in the data dir, if there is one)")
    parser.add_argument("--keep-optimizer", action="store_true",
                        help="keep the optimizer state in the fairseq export (to continue pretraining)")
    args = parser.parse_args(argv)
    if not (args.fairseq_out or args.hf_out or args.save_importance):
        parser.error("nothing to do: give --fairseq-out, --hf-out and/or --save-importance")
    try:
        run(args)
    except (ExportError, ConversionError) as e:
        sys.exit(f"export_checkpoint: error: {e}")


def run(args):
    if not os.path.isfile(args.checkpoint):
        raise ExportError(f"no such checkpoint: {args.checkpoint}")
    log(f"loading {args.checkpoint}")
    try:
        state = load_checkpoint(args.checkpoint)
    except Exception as e:
        raise ExportError(f"cannot read {args.checkpoint} as a fairseq checkpoint ({type(e).__name__}: {e})")
    if state.get("cfg") is None or "model" not in state:
        raise ExportError(f"{args.checkpoint} has no cfg/model: not a fairseq-train checkpoint")
    data_dir = args.data or state["cfg"].task.data.split(os.pathsep)[0]
    dict_path, spm_path = find_data_files(data_dir, args.spm_model)
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [args.checkpoint], arg_overrides={"data": os.path.dirname(os.path.abspath(dict_path))})
    model = models[0].eval()
    model_args = plain(state["cfg"].model)
    model_args["max_positions"] = model.max_positions()

    if args.save_importance:
        try:
            scores = find_token_importance(model).get()
        except TypeError:
            raise ExportError(f"--save-importance: {args.checkpoint} has no token-importance scores "
                              "(not a tokendrop_roberta checkpoint)")
        atomic_torch_save(scores, args.save_importance)
        log(f"wrote {args.save_importance} (float32 [{scores.numel()}], for --init-token-importance)")
    if args.hf_out:
        export_hf(model, model_args, len(task.source_dictionary), args.hf_out, dict_path, spm_path)
    if args.fairseq_out:
        export_fairseq(state, model, model_args, args.fairseq_out, dict_path, spm_path, args.keep_optimizer)


if __name__ == "__main__":
    main()
