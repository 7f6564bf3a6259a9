"""fairseq's per-layer wrappers: --checkpoint-activations covers every layer of the dropping path, the
cross-attention layer included; --ddp-backend fully_sharded is refused."""
import pytest
import torch

from fairseq_tokendrop import set_token_importance

from conftest import build_tokendrop, random_tokens, run_cli, tiny_dictionary, train_flags


def gradients_and_attention_grad_modes(model, tokens, masked, targets, monkeypatch):
    """Parameter gradients of one dropping step, and torch.is_grad_enabled() at every real SDPA call
    (forward and the backward's recomputation)."""
    modes = []
    real = torch.nn.functional.scaled_dot_product_attention

    def recording(*args, **kwargs):
        modes.append(torch.is_grad_enabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    model.train()
    torch.manual_seed(7)  # the same dropout masks in both models
    logits, _ = model(tokens, masked_tokens=masked)
    forward_modes = modes[:]
    torch.nn.functional.cross_entropy(logits, targets).backward()
    monkeypatch.undo()
    grads = {n: p.grad for n, p in model.named_parameters()}
    return grads, forward_modes, modes[len(forward_modes):]


def test_checkpointed_layers_recompute_in_backward_with_equal_gradients(monkeypatch):
    d = tiny_dictionary()
    dropouts = dict(dropout=0.1, attention_dropout=0.1, activation_dropout=0.1)
    plain = build_tokendrop(d, token_drop=0.5, **dropouts)
    checkpointed = build_tokendrop(d, token_drop=0.5, checkpoint_activations=True, **dropouts)
    checkpointed.load_state_dict(plain.state_dict(), strict=True)
    scores = torch.rand(len(d), generator=torch.Generator().manual_seed(4)) * 10
    for m in (plain, checkpointed):
        set_token_importance(m, scores)
    tokens = random_tokens(d, 3, 14, seed=4, pad_tail=(0, 3, 9))  # row 2 keeps padding: masks everywhere
    masked = torch.zeros_like(tokens, dtype=torch.bool)
    masked[:, 2] = masked[0, 6] = True
    targets = tokens[masked]

    expected, plain_forward, plain_backward = gradients_and_attention_grad_modes(
        plain, tokens, masked, targets, monkeypatch)
    grads, forward, backward = gradients_and_attention_grad_modes(
        checkpointed, tokens, masked, targets, monkeypatch)

    layers = len(checkpointed.encoder.sentence_encoder.layers)
    assert plain_forward == [True] * layers and plain_backward == []
    # every layer's attention, the cross-attention layer's (index N//2-1) included, ran without autograd
    # in the forward and again, recorded, in the backward
    assert forward == [False] * layers and backward == [True] * layers
    for name, g in expected.items():
        assert g is not None and torch.allclose(grads[name], g, atol=1e-6), name


@pytest.mark.slow
def test_fully_sharded_is_refused_at_startup_in_one_line(data_bin, tmp_path):
    proc = run_cli("fairseq_cli.train", *train_flags(data_bin, tmp_path, "--cpu", "--max-update", "1",
                                                     "--ddp-backend", "fully_sharded"), check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq_tokendrop: error: --ddp-backend fully_sharded is not supported")
    assert "Traceback" not in proc.stderr and not (tmp_path / "checkpoint_last.pt").exists()
