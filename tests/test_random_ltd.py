"""Random-LTD's draw and its wrapped layer, against plain computations and stock fairseq layers."""
import itertools
from collections import Counter

import pytest
import torch

from fairseq_tokendrop.method.random_ltd import (default_layers, draw_kept, kept_padding_masks, layer_slots,
                                                 parse_layers, run_on_kept)

from conftest import build_stock_roberta, tiny_dictionary


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
