"""Random-LTD: the draw and a wrapped layer against plain computations; the model layer by layer
against stock fairseq layers run on the drawn tokens."""
import itertools
from collections import Counter

import pytest
import torch

import fairseq_tokendrop
from fairseq_tokendrop.method.noise import noise_seed
from fairseq_tokendrop.method.random_ltd import (default_layers, draw_kept, kept_padding_masks, layer_slots,
                                                 parse_layers, run_on_kept)

from conftest import build_stock_roberta, build_tokendrop, random_tokens, tiny_dictionary


def generator(seed):
    return torch.Generator().manual_seed(seed)


def test_default_layers_are_all_but_the_first_and_last():
    assert default_layers(12) == tuple(range(1, 11))
    assert parse_layers("", 6) == parse_layers(None, 6) == (1, 2, 3, 4)
    assert parse_layers("3,1", 6) == (1, 3)
    assert layer_slots(6, (1, 3)) == (None, 0, None, 1, None, None)


@pytest.mark.parametrize("spec,reason", [("0,1", "layer 0 is not in 1..4"), ("1,5", "layer 5 is not in 1..4"),
                                         ("1,1", "named twice"), ("1;2", "comma-separated")])
def test_bad_layer_lists_are_refused_with_their_reason(spec, reason):
    with pytest.raises(ValueError, match=reason):
        parse_layers(spec, 6)


def test_draws_are_sorted_distinct_fresh_per_layer_and_sample_and_reproducible():
    padding = torch.zeros(3, 12, dtype=torch.bool)
    index = draw_kept(generator(5), padding, 4, 5)
    assert index.shape == (4, 3, 5)
    rows = index.view(-1, 5).tolist()
    for row in rows:
        assert row == sorted(set(row)) and all(0 <= i < 12 for i in row)
    assert len({tuple(r) for r in rows}) == len(rows)  # 12 rows of C(12,5)=792 subsets: all differ
    assert torch.equal(index, draw_kept(generator(5), padding, 4, 5))
    assert not torch.equal(index, draw_kept(generator(6), padding, 4, 5))


def test_padding_is_drawn_only_once_a_row_has_no_real_token_left():
    T, K = 10, 4
    padding = torch.zeros(3, T, dtype=torch.bool)
    padding[1, 6:] = True  # 6 real tokens >= K: no padding may be drawn
    padding[2, 3:] = True  # 3 real tokens < K: all of them, then the first padding position
    for seed in range(50):
        index = draw_kept(generator(seed), padding, 2, K)
        assert (index[:, 1] < 6).all()
        assert index[:, 2].tolist() == [[0, 1, 2, 3]] * 2
        masks = kept_padding_masks(padding, index)
        assert torch.equal(masks, padding.unsqueeze(0).expand(2, -1, -1).gather(2, index))
        assert not masks[:, :2].any() and masks[:, 2].tolist() == [[False, False, False, True]] * 2


def test_every_subset_is_equally_likely():
    """T=5, K=2: each of the 10 subsets should come up 1/10 of the time; 20,000 draws give each
    a count of 2000 with a standard deviation of about 42, so 10% is a margin of ~5 sd."""
    draws = draw_kept(generator(0), torch.zeros(20_000, 5, dtype=torch.bool), 1, 2)[0]
    counts = Counter(tuple(r) for r in draws.tolist())
    assert set(counts) == set(itertools.combinations(range(5), 2))
    assert all(abs(c - 2000) < 200 for c in counts.values()), counts


def test_a_wrapped_stock_layer_runs_on_the_drawn_tokens_and_leaves_the_others_unchanged():
    d = tiny_dictionary()
    torch.manual_seed(0)
    layer = build_stock_roberta(d).encoder.sentence_encoder.layers[1].eval()
    T, B, C, K = 9, 3, 16, 4
    x = torch.randn(T, B, C)
    padding = torch.zeros(B, T, dtype=torch.bool)
    padding[1, 7:] = True
    padding[2, 3:] = True  # 3 real tokens: one padding position among the 4 kept
    index = draw_kept(generator(1), padding, 1, K)[0]
    mask = kept_padding_masks(padding, index[None])[0]
    out = run_on_kept(layer, x, index, mask)
    for b in range(B):
        kept = [i for i in index[b].tolist() if not padding[b, i]]
        # the stock layer on this sample's kept real tokens alone, no padding, no mask
        ref = layer(x[kept, b : b + 1], encoder_padding_mask=None)[:, 0]
        assert torch.allclose(out[kept, b], ref, atol=1e-5), b
        dropped = [i for i in range(T) if i not in index[b].tolist()]
        assert torch.equal(out[dropped, b], x[dropped, b]), b


SEED = 3  # the models' --seed: the noise of update u, micro-batch i comes from noise_seed(SEED, u, i)


def reference_draw(update, micro_batch, tokens, pad, layers, kept):
    """The documented draw, redone in plain Python: per wrapped layer and sample, the ``kept`` real
    positions with the largest noise (padding after every real token), ascending."""
    g = torch.Generator().manual_seed(noise_seed(SEED, update, micro_batch))
    noise = torch.rand((layers,) + tuple(tokens.shape), generator=g)
    draws = []
    for layer_noise in noise.tolist():
        rows = []
        for b, row in enumerate(layer_noise):
            real = [i for i in range(len(row)) if tokens[b, i] != pad]
            pads = [i for i in range(len(row)) if tokens[b, i] == pad]
            rows.append(sorted((sorted(real, key=lambda i: -row[i]) + pads)[:kept]))
        draws.append(rows)
    return draws


def ltd_twins(**overrides):
    d = tiny_dictionary()
    ours = build_tokendrop(d, token_drop_strategy="random-ltd", seed=0, **overrides)
    ours.encoder.strategy.noise.seed = SEED
    stock = build_stock_roberta(d, **{k: v for k, v in overrides.items()
                                      if not k.startswith(("token", "random_ltd"))})
    stock.load_state_dict(ours.state_dict(), strict=True)
    return d, ours, stock


@pytest.mark.parametrize("spec", [None, "2,3"])
@pytest.mark.parametrize("prenorm", [False, True])
def test_every_layer_equals_stock_layers_run_on_the_drawn_tokens(spec, prenorm):
    extra = dict(encoder_normalize_before=True, layernorm_embedding=False) if prenorm else {}
    d, ours, stock = ltd_twins(token_keep_k=5, random_ltd_layers=spec, **extra)
    wrapped = parse_layers(spec, 6)
    tokens = random_tokens(d, 4, 12, seed=1, pad_tail=(0, 3, 8, 1))  # row 2: 4 real tokens, fewer than 5
    ours.train()
    ours.set_num_updates(7)
    features, out = ours(tokens, features_only=True, return_all_hiddens=True)
    states = out["inner_states"]  # the embedding's output, then each layer's, [T, B, C]
    draws = reference_draw(7, 0, tokens, d.pad(), len(wrapped), 5)
    enc = stock.encoder.sentence_encoder
    with torch.no_grad():
        for b in range(tokens.size(0)):
            real = tokens[b][tokens[b].ne(d.pad())]
            n = real.numel()
            x = enc.forward_embedding(real[None])[0].transpose(0, 1)  # [n, 1, C], this sample alone
            assert torch.allclose(states[0][:n, b], x[:, 0], atol=1e-5)
            for i, layer in enumerate(enc.layers):
                if i in wrapped:
                    drawn = draws[wrapped.index(i)][b]
                    kept = [j for j in drawn if j < n]  # the padding a short row draws is not a token
                    y = x.clone()
                    y[kept] = layer(x[kept], encoder_padding_mask=None)
                    dropped = [j for j in range(12) if j not in drawn]
                    assert torch.equal(states[i + 1][dropped, b], states[i][dropped, b]), (i, b)
                else:
                    y = layer(x, encoder_padding_mask=None)
                assert torch.allclose(states[i + 1][:n, b], y[:, 0], atol=1e-5), (i, b)
                x = y
            if enc.layer_norm is not None:
                x = enc.layer_norm(x)
            assert torch.allclose(features[b, :n], x[:, 0], atol=1e-5), b
    assert torch.equal(out["last_layer_input"], states[-2].transpose(0, 1))
    real_per_row = tokens.ne(d.pad()).sum(1)
    assert out["kept_tokens"].item() == real_per_row.clamp(max=5).sum().item()  # what each wrapped layer saw


def test_evaluation_and_a_full_kept_length_are_stock_roberta():
    d, ours, stock = ltd_twins(token_keep_schedule="4,12,10,2")
    tokens = random_tokens(d, 3, 12, seed=2, pad_tail=(0, 4, 2))
    ours.eval()
    stock.eval()
    assert torch.equal(ours(tokens, features_only=True)[0], stock(tokens, features_only=True)[0])
    ours.train()
    stock.train()  # dropout is 0: training differs from evaluation only by the dropping
    for update, kept in ((0, 4), (4, 6), (5, 8), (9, 10), (10, 12)):  # floor(u/10*8+4), even
        ours.set_num_updates(update)
        assert ours.encoder.kept_length(12) == kept
        assert (ours.encoder.plan(tokens) is None) == (kept == 12)
    assert torch.equal(ours(tokens, features_only=True)[0], stock(tokens, features_only=True)[0])
    assert ours.encoder.kept_length(8) == 8  # a batch padded shorter than the schedule's value


def test_hydra_lists_are_read_as_the_comma_separated_flags():
    """fairseq-hydra-train gives ``model.token_keep_schedule=[8,32,4,4]`` as a list."""
    from omegaconf import OmegaConf

    model = build_tokendrop(token_drop_strategy="random-ltd", token_keep_schedule=OmegaConf.create([8, 32, 4, 4]),
                            random_ltd_layers=[1, 2])
    assert tuple(model.encoder.keep_schedule) == (8, 32, 4, 4) and model.encoder.strategy.layerwise_layers == (1, 2)


@pytest.mark.parametrize("strategy,flags,allowed,denied", [
    # TF Model Garden's lists, by symbol, when none is given
    ("importance", {}, ["<s>", "</s>", "<unk>", "<mask>"], ["<pad>"]),
    ("random", {}, ["<s>", "</s>", "<unk>", "<mask>"], ["<pad>"]),
    ("importance", {"token_allow_list": "", "token_deny_list": "w7"}, [], ["w7"]),
    # DeepSpeed pins nothing: every score is free, <s> and <pad> included
    ("random-ltd", {}, [], []),
])
def test_the_pins_in_force_are_the_flags_else_the_strategys_default(strategy, flags, allowed, denied):
    d = tiny_dictionary()
    model = build_tokendrop(d, token_drop_strategy=strategy, token_drop=0.5, **flags)
    pins = model.token_importance.pins
    expected = torch.zeros(len(d))
    expected[[d.index(s) for s in allowed]] = 1e4
    expected[[d.index(s) for s in denied]] = -1e4
    assert torch.equal(pins.value, expected)
    assert pins.pinned.sum() == len(allowed) + len(denied)
    scores = fairseq_tokendrop.get_token_importance(model)
    assert torch.equal(scores, torch.where(pins.pinned, expected, torch.full((len(d),), 10.0)))
