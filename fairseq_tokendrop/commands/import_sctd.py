"""Bring a checkpoint of the ScTD authors' fork: its weights and importance scores, ready for --restore-file.

    fairseq-tokendrop-import-sctd fork_ckpt/checkpoint_last.pt imported/

Writes imported/model.pt, a ``tokendrop_roberta`` checkpoint at update 0 with the fork's weights and
its scores (in the state dict's metadata, as this plugin saves them: ``--restore-file`` brings them
back, and stock ``--arch roberta_base`` loads the file strictly), and imported/importance.pt (the
scores for ``--init-token-importance``). Then train on with the command it prints. Carried over:
weights, scores, the fork's dimensions and ``--token-drop``, its hard-coded ScTD schedule (every 10
updates, beta 0.95). Not carried: the optimizer state and the update count (reset flags). The fork pins
``<s> <pad> </s> <mask>``; this plugin pins its own allow/deny lists on load (``<pad>`` dropped first).
The data-bin must be the fork run's (same dict.txt). See ``fairseq_tokendrop/interop/sctd_fork.py``.
"""
import argparse
import os


import fairseq_tokendrop  # noqa: F401  (registers the plugin, allowlists what fairseq checkpoints carry)
from fairseq_tokendrop.checkpoints.safe_loading import load_checkpoint

from fairseq_tokendrop import set_token_importance
from fairseq_tokendrop.checkpoints.checkpoint_io import (atomic_torch_save, dimension_flags, fresh_training_state,
                                                       plain, restore_command, training_cfg)
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.interop.sctd_fork import (FORK_SCHEDULE_FLAGS, fork_model_args,
                                                 split_fork_state)
from fairseq_tokendrop.standalone import build_model, made_up_dictionary
from fairseq_tokendrop.commands.log import command_log


log = command_log("import_sctd")


def convert(fork_path, out_dir):
    state = load_checkpoint(fork_path)
    cfg = plain(state.get("cfg") or {})
    model_cfg = cfg.get("model") or state.get("args")
    if model_cfg is None:
        raise TokendropError("the checkpoint has no cfg.model (or args) to read the model's dimensions from")
    arch, model_args = fork_model_args(model_cfg)
    weights, scores = split_fork_state(state["model"])
    token_drop = model_args.pop("token_drop")
    log(f"{arch}: {model_args['encoder_layers']} layers, d={model_args['encoder_embed_dim']}, "
        f"{scores.numel()} scores, --token-drop {token_drop}")
    # Loading into the real model checks every name and shape; the scores then travel as ours do.
    # Building needs only the dictionary's size and specials (<mask> last, as the fork's masked_lm has it).
    model = build_model(arch, made_up_dictionary(scores.numel()), **model_args, token_drop=token_drop)
    model.load_state_dict(weights, strict=True)
    set_token_importance(model, scores)
    flags = ["--token-drop", str(token_drop), *FORK_SCHEDULE_FLAGS]
    os.makedirs(out_dir, exist_ok=True)
    atomic_torch_save(scores, os.path.join(out_dir, "importance.pt"))
    checkpoint = fresh_training_state(training_cfg(os.path.abspath(out_dir), arch, model_args, *flags),
                                      model.state_dict(), "MaskedLmTokenDropLoss")
    atomic_torch_save(checkpoint, os.path.join(out_dir, "model.pt"))
    log(f"wrote {out_dir}/model.pt and {out_dir}/importance.pt. Train on with:\n  "
        + restore_command(out_dir, arch, dimension_flags(model_args) + flags))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint written by the ScTD fork's fairseq-train")
    parser.add_argument("out_dir", help="where model.pt and importance.pt go")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        raise TokendropError(f"no such file: {args.checkpoint}")
    try:
        convert(args.checkpoint, args.out_dir)
    except TokendropError as e:
        raise TokendropError(f"{args.checkpoint}: {e.message}") from None


if __name__ == "__main__":
    main()
