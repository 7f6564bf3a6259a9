"""Segment (token-type) embeddings: off by default (exactly stock RoBERTa), BERT's input embedding when on.

Checked against stock fairseq RoBERTa fed the hand-indexed word + segment rows as its
token embeddings, and against the per-sample recomputation of the dropping layout.
"""
import pytest
import torch

from fairseq_tokendrop import set_token_importance

from conftest import build_stock_roberta, build_tokendrop, random_tokens, tiny_dictionary
from test_encoder_layout import reference_features


def segments_of(tokens, first_lengths):
    """[B, T] segment ids: 0 for the first ``first_lengths[b]`` tokens of row b, 1 after."""
    positions = torch.arange(tokens.size(1))[None]
    return (positions >= torch.tensor(first_lengths)[:, None]).long()


def test_off_by_default_the_state_dict_is_stock_robertas():
    d = tiny_dictionary()
    assert build_tokendrop(d).state_dict().keys() == build_stock_roberta(d).state_dict().keys()


def test_full_pass_equals_stock_roberta_given_word_plus_segment_rows():
    d = tiny_dictionary()
    ours = build_tokendrop(d, num_segment=2, token_drop=0.5).eval()
    stock = build_stock_roberta(d).eval()
    state = {k: v for k, v in ours.state_dict().items() if "embed_segments" not in k}
    stock.load_state_dict(state, strict=True)
    table = ours.encoder.sentence_encoder.embed_segments.weight
    assert table.shape == (2, 16) and not torch.equal(table[0], table[1])
    tokens = random_tokens(d, 3, 12, pad_tail=(0, 4, 2))
    segments = segments_of(tokens, [5, 3, 12])
    with torch.no_grad():
        words = stock.encoder.sentence_encoder.embed_tokens.weight[tokens] + table[segments]
        expected = stock.encoder.sentence_encoder(tokens, token_embeddings=words)["encoder_out"][0].transpose(0, 1)
        features, _ = ours(tokens, features_only=True, segment_labels=segments)
        assert torch.allclose(features, expected, atol=1e-6)
        # without labels every token is segment 0, as BERT without token_type_ids
        zeros, _ = ours(tokens, features_only=True)
        assert torch.equal(zeros, ours(tokens, features_only=True, segment_labels=torch.zeros_like(tokens))[0])
        assert not torch.allclose(zeros, features)


@pytest.mark.parametrize("layers", [4, 6])
def test_dropped_and_kept_tokens_carry_their_segment(layers):
    d = tiny_dictionary()
    model = build_tokendrop(d, encoder_layers=layers, num_segment=2, token_drop=0.5)
    set_token_importance(model, torch.rand(len(d), generator=torch.Generator().manual_seed(layers)) * 10)
    tokens = random_tokens(d, 4, 14, seed=layers, pad_tail=(0, 5, 9, 1))
    segments = segments_of(tokens, [7, 4, 2, 10])
    model.train()
    keep = model.encoder.plan(tokens).index
    features, _ = model(tokens, features_only=True, segment_labels=segments)
    with torch.no_grad():
        expected = reference_features(model, tokens, keep, segments)
    for b, (ref, _) in enumerate(expected):
        assert torch.allclose(features[b, : ref.size(0)], ref, atol=1e-5), f"sample {b}"


def test_a_negative_count_is_refused_naming_the_flag():
    from fairseq_tokendrop.errors import TokendropError

    with pytest.raises(TokendropError, match="--num-segment"):
        build_tokendrop(tiny_dictionary(), num_segment=-1)
