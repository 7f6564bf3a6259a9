"""fairseq's per-layer wrappers: --checkpoint-activations covers every layer of the dropping path, the
cross-attention layer included, and keeps the gradients bit for bit (``method/activation_checkpointing.py``
says why it is non-reentrant); --ddp-backend fully_sharded is refused."""
from typing import NamedTuple, Tuple

import pytest
import torch

from fairseq_tokendrop import set_token_importance
from fairseq_tokendrop.criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig, MaskedLmTokenDropLoss
from fairseq_tokendrop.standalone import StandaloneTask

from conftest import build_tokendrop, random_tokens, run_cli, tiny_dictionary, train_flags


class Recorded(NamedTuple):
    grads: dict
    attention_grad_modes: Tuple[list, list]  # torch.is_grad_enabled() at each real SDPA call: forward, backward
    saved_in_layers: int  # bytes the forward left to autograd while a layer ran / outside every layer
    saved_elsewhere: int
    layer_input_bytes: int  # bytes of the tensors the layers were called with (their first argument)


def sctd_update(model, dictionary, samples, monkeypatch, seed=7):
    """One ScTD update over two micro-batches (drop and full pass each, gradients accumulated as
    fairseq's --update-freq 2 does), recording what the forward left to autograd. Saved-tensor hooks
    installed here see what no inner hook takes: everything, without checkpointing."""
    criterion = MaskedLmTokenDropLoss(MaskedLmTokenDropConfig(sctd_interval=1), StandaloneTask(dictionary, 64))
    modes, saved, inputs, inside = {"forward": [], "backward": []}, {True: 0, False: 0}, [], []
    phase = ["forward"]
    real = torch.nn.functional.scaled_dot_product_attention

    def recording(*args, **kwargs):
        modes[phase[0]].append(torch.is_grad_enabled())
        return real(*args, **kwargs)

    def pack(t):
        saved[bool(inside)] += t.numel() * t.element_size()
        return t

    def enter(layer, args):
        inside.append(layer)
        inputs.append(args[0].numel() * args[0].element_size())

    def leave(layer, args, output):  # returns None: the output stays
        inside.pop()

    layers = model.encoder.sentence_encoder.layers
    handles = [h for layer in layers for h in (layer.register_forward_pre_hook(enter),
                                               layer.register_forward_hook(leave))]
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    model.train()
    torch.manual_seed(seed)  # the same dropout masks in every model
    for sample in samples:
        phase[0] = "forward"
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss, _, _ = criterion(model, sample)
        phase[0] = "backward"
        loss.backward()
    monkeypatch.undo()
    for h in handles:
        h.remove()
    grads = {n: p.grad for n, p in model.named_parameters()}
    return Recorded(grads, (modes["forward"], modes["backward"]), saved[True], saved[False], sum(inputs))


def mlm_sample(dictionary, seed, pad_tail):
    tokens = random_tokens(dictionary, 3, 14, seed=seed, pad_tail=pad_tail)
    target = torch.full_like(tokens, dictionary.pad())
    target[:, 2] = tokens[:, 2]
    target[0, 6] = tokens[0, 6]
    tokens[target.ne(dictionary.pad())] = dictionary.index("<mask>")
    return {"net_input": {"src_tokens": tokens}, "target": target,
            "ntokens": int(tokens.ne(dictionary.pad()).sum()), "nsentences": 3}


@pytest.mark.parametrize("strategy", ["importance", "random-ltd"])
@pytest.mark.parametrize("offload", [False, True])
def test_checkpointed_layers_keep_only_their_inputs_and_give_the_same_gradients_bit_for_bit(monkeypatch, offload,
                                                                                         strategy):
    d = tiny_dictionary()
    # random-ltd: both models draw update 0's noise, micro-batch by micro-batch
    dropouts = dict(dropout=0.1, attention_dropout=0.1, activation_dropout=0.1, token_drop_strategy=strategy)
    plain = build_tokendrop(d, token_drop=0.5, **dropouts)
    checkpointed = build_tokendrop(d, token_drop=0.5, offload_activations=True, **dropouts) if offload else \
        build_tokendrop(d, token_drop=0.5, checkpoint_activations=True, **dropouts)
    checkpointed.load_state_dict(plain.state_dict(), strict=True)
    scores = torch.rand(len(d), generator=torch.Generator().manual_seed(4)) * 10
    for m in (plain, checkpointed):
        set_token_importance(m, scores)
    # row 2 keeps padding in the kept tokens too: masks everywhere
    samples = [mlm_sample(d, 4, (0, 3, 9)), mlm_sample(d, 5, (0, 3, 9))]

    expected = sctd_update(plain, d, samples, monkeypatch)
    got = sctd_update(checkpointed, d, samples, monkeypatch)

    calls = 2 * 2 * len(plain.encoder.sentence_encoder.layers)  # micro-batches x passes x layers
    assert expected.attention_grad_modes == ([True] * calls, [])
    # every layer call, the cross-attention layer's (index N//2-1) or random-LTD's wrapped ones included, ran
    # its attention in the
    # forward (non-reentrant: under autograd) and once again in the backward
    assert got.attention_grad_modes == ([True] * calls, [True] * calls)
    # outside the layers the graph is the same; inside, only the layers' inputs are kept, and with
    # offloading not even those by the graph itself (torch's save_on_cpu hook took them)
    assert got.saved_elsewhere == expected.saved_elsewhere
    assert got.saved_in_layers == (0 if offload else expected.layer_input_bytes)
    assert expected.saved_in_layers > 10 * expected.layer_input_bytes
    for name, g in expected.grads.items():
        assert g is not None and torch.equal(got.grads[name], g), name


@pytest.mark.slow
def test_fully_sharded_is_refused_at_startup_in_one_line(data_bin, tmp_path):
    proc = run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path, "--cpu", "--max-update", "1",
                                                     "--ddp-backend", "fully_sharded"), check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq_tokendrop: error: --ddp-backend fully_sharded is not supported")
    assert "Traceback" not in proc.stderr and not (tmp_path / "checkpoint_last.pt").exists()
