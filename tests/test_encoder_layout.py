"""The token-dropping encoder against stock fairseq RoBERTa and a per-sample re-computation."""
import weakref

import pytest
import torch

from fairseq_tokendrop import set_token_importance
from fairseq_tokendrop.errors import TokendropError

from conftest import build_stock_roberta, build_tokendrop, random_tokens, tiny_dictionary


def twin_models(**overrides):
    d = tiny_dictionary()
    ours = build_tokendrop(d, **overrides)
    stock = build_stock_roberta(d, **{k: v for k, v in overrides.items() if not k.startswith("token")})
    stock.load_state_dict(ours.state_dict(), strict=True)
    return d, ours, stock


@pytest.mark.parametrize("mode", ["eval", "train_without_dropping"])
def test_without_dropping_it_is_stock_roberta(mode):
    drop = 0.5 if mode == "eval" else 0.0
    d, ours, stock = twin_models(token_drop=drop, dropout=0.0)
    tokens = random_tokens(d, 3, 12, pad_tail=(0, 4, 2))
    masked = torch.zeros_like(tokens, dtype=torch.bool)
    masked[:, 3] = masked[1, 5] = True
    for m in (ours, stock):
        m.train(mode != "eval")
    features, extra = ours(tokens, features_only=True)
    assert torch.equal(features, stock(tokens, features_only=True)[0])
    if mode == "eval":  # inference does not hold every layer's output alive
        assert extra["last_layer_input"] is None
    assert torch.equal(ours(tokens, masked_tokens=masked)[0], stock(tokens, masked_tokens=masked)[0])


def reference_features(model, tokens, keep_index, segments=None):
    """(output, input of the last layer) of each sample alone, unpadded, through the stock layers, following the layout by hand.

    ``segments`` ``[B, T]``: BERT's input embedding, word row plus segment row, indexed by hand.

    The cross-attention layer's reference is the stock layer over all tokens,
    keeping only the rows of kept tokens: attention from a subset of queries to
    all keys is exactly those rows of full self-attention.
    """
    enc = model.encoder.sentence_encoder
    layers, pad = enc.layers, enc.padding_idx
    n = len(layers)
    split = n // 2 - 1
    out = []
    for b in range(tokens.size(0)):
        real = tokens[b][tokens[b].ne(pad)]
        kept = [i for i in keep_index[b].tolist() if i < len(real)]
        words = None if segments is None else (
            enc.embed_tokens.weight[real] + enc.embed_segments.weight[segments[b][: len(real)]])[None]
        x = enc.forward_embedding(real[None], words)[0].transpose(0, 1)  # [L, 1, C]
        for layer in layers[:split]:
            x = layer(x, encoder_padding_mask=None)
        h = layers[split](x, encoder_padding_mask=None)[kept]
        for layer in layers[split + 1 : n - 1]:
            h = layer(h, encoder_padding_mask=None)
        merged = x.clone()
        merged[kept] = h
        y = layers[n - 1](merged, encoder_padding_mask=None)
        if enc.layer_norm is not None:
            y = enc.layer_norm(y)
        out.append((y[:, 0], merged[:, 0]))
    return out


@pytest.mark.parametrize("layers", [4, 6, 7])
@pytest.mark.parametrize("prenorm", [False, True])
@pytest.mark.parametrize("flag", [("token_drop", 0.5), ("token_keep_k", 5)])
def test_dropping_matches_a_recomputation_from_stock_layers(layers, prenorm, flag):
    extra = dict(encoder_normalize_before=True, layernorm_embedding=False) if prenorm else {}
    d = tiny_dictionary()
    model = build_tokendrop(d, encoder_layers=layers, **{flag[0]: flag[1]}, **extra)
    g = torch.Generator().manual_seed(layers)
    set_token_importance(model, torch.rand(len(d), generator=g) * 10)
    tokens = random_tokens(d, 4, 14, seed=layers, pad_tail=(0, 5, 9, 1))
    tokens[2, 3] = d.index("<mask>")
    model.train()
    keep = model.encoder.plan(tokens).index
    assert keep.shape == (4, 7 if flag[0] == "token_drop" else 5)
    features, extra_out = model(tokens, features_only=True)
    with torch.no_grad():
        expected = reference_features(model, tokens, keep)
    for b, (ref, ref_last_input) in enumerate(expected):
        assert torch.allclose(features[b, : ref.size(0)], ref, atol=1e-5), f"sample {b}"
        last_input = extra_out["last_layer_input"][b, : ref.size(0)]
        assert torch.allclose(last_input, ref_last_input, atol=1e-5), f"sample {b}"
    real = tokens.ne(d.pad())
    assert extra_out["tokens"].item() == real.sum().item()
    assert extra_out["kept_tokens"].item() == real.gather(1, keep).sum().item()


def record_attention_calls(monkeypatch):
    """(query length, key length, got a mask) of every real SDPA call; fairseq's MultiheadAttention
    reaches it through F.multi_head_attention_forward, the cross-attention layer directly."""
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def recording(query, key, value, attn_mask=None, *args, **kwargs):
        calls.append((query.size(-2), key.size(-2), attn_mask is not None))
        return real(query, key, value, attn_mask, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    return calls


@pytest.mark.parametrize("padding", ["none", "only_dropped", "also_kept"])
def test_attention_gets_a_mask_only_where_there_is_padding(monkeypatch, padding):
    T, K = 12, 6
    # also_kept: row 2 has 4 real tokens, so 2 of its 6 kept positions are padding
    pad_tail = {"none": (), "only_dropped": (0, 4, 2), "also_kept": (0, 4, 8)}[padding]
    d, ours, stock = twin_models(token_drop=0.5)
    set_token_importance(ours, torch.rand(len(d), generator=torch.Generator().manual_seed(3)) * 10)
    tokens = random_tokens(d, 3, T, seed=2, pad_tail=pad_tail)
    ours.train()
    stock.train()
    calls = record_attention_calls(monkeypatch)
    keep = ours.encoder.plan(tokens).index
    features, _ = ours(tokens, features_only=True)
    dropping_calls = calls[:]
    calls.clear()
    stock(tokens, features_only=True)

    full, kept = padding != "none", padding == "also_kept"
    assert calls == [(T, T, full)] * 6
    assert dropping_calls == [(T, T, full)] * 2 + [(K, T, full)] + [(K, K, kept)] * 2 + [(T, T, full)]
    assert tokens.eq(d.pad()).gather(1, keep).any().item() == kept
    with torch.no_grad():
        expected = reference_features(ours, tokens, keep)
    for b, (ref, _) in enumerate(expected):
        assert torch.allclose(features[b, : ref.size(0)], ref, atol=1e-5), f"sample {b}"


def test_selection_keeps_allowed_and_drops_padding_first():
    d = tiny_dictionary()
    model = build_tokendrop(d, token_drop=0.5)
    tokens = random_tokens(d, 2, 12, pad_tail=(0, 3))
    tokens[0, 4] = d.index("<mask>")
    set_token_importance(model, torch.arange(len(d)).float())
    model.train()
    keep = model.encoder.plan(tokens).index
    scores = torch.arange(len(d)).float()
    for b in range(2):
        row = tokens[b].tolist()
        rank = lambda i: (  # noqa: E731  allow list first, padding last, then by score, earlier first
            -(row[i] in (d.bos(), d.eos(), d.unk(), d.index("<mask>"))),
            row[i] == d.pad(),
            -scores[row[i]].item(),
            i,
        )
        assert keep[b].tolist() == sorted(sorted(range(12), key=rank)[:6])


@pytest.mark.parametrize("strategy", ["importance", "random"])
@pytest.mark.parametrize("lists", [dict(token_deny_list=""),
                                   dict(token_allow_list="<s>,</s>,<unk>,<mask>,<pad>", token_deny_list="")],
                         ids=["pad_not_denied", "pad_allowed"])
def test_padding_is_never_kept_while_a_real_token_is_dropped_whatever_the_lists(strategy, lists):
    d = tiny_dictionary()
    model = build_tokendrop(d, token_keep_k=8, token_drop_strategy=strategy, **lists).train()
    scores = torch.zeros(len(d))
    scores[d.pad()] = 5.0  # above every word: padding would win wherever its score counted
    set_token_importance(model, scores)
    tokens = random_tokens(d, 3, 12, pad_tail=(0, 6, 9))  # 12, 6 and 3 real tokens, 8 kept
    keep = model.encoder.plan(tokens).index
    for b in range(3):
        real = int(tokens[b].ne(d.pad()).sum())
        kept_padding = sum(int(tokens[b, i]) == d.pad() for i in keep[b].tolist())
        assert kept_padding == max(0, 8 - real), (b, keep[b].tolist())


def test_a_training_forward_without_dropping_keeps_alive_only_the_last_layers_input():
    """ScTD reads the input of the last layer; the outputs of the layers before it must be freed as the
    forward goes (under --offload-activations they would otherwise stay on the device until its end).
    Under no_grad autograd holds nothing, so what is alive when the last layer starts is what the
    encoder itself keeps."""
    d = tiny_dictionary()
    model = build_tokendrop(d).train()  # no dropping: the stock path, as ScTD's full pass takes it
    layers = model.encoder.sentence_encoder.layers
    outputs, alive = [], []
    for layer in layers[:-1]:
        layer.register_forward_hook(lambda module, args, out: outputs.append(weakref.ref(out)))
    layers[-1].register_forward_pre_hook(lambda module, args: alive.append([o() is not None for o in outputs]))
    tokens = random_tokens(d, 2, 10, pad_tail=(0, 3))
    with torch.no_grad():
        _, extra = model(tokens, features_only=True)
        states = model.encoder.sentence_encoder(tokens, return_all_hiddens=True)["encoder_states"]
    assert alive[0] == [False] * (len(layers) - 2) + [True]
    assert torch.equal(extra["last_layer_input"], states[-2].transpose(0, 1))  # dropout 0: the same forward


def test_too_few_layers_is_a_clear_error():
    with pytest.raises(TokendropError, match="--encoder-layers must be >= 4"):
        build_tokendrop(encoder_layers=3, token_drop=0.5)
