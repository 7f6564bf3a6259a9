"""The importance tracker against hand computations."""
import torch

from fairseq_tokendrop import get_token_importance, set_token_importance
from fairseq_tokendrop.importance import PIN, TokenImportance

from conftest import build_tokendrop, build_stock_roberta, tiny_dictionary


def tracker(beta=0.9, init=10.0):
    return TokenImportance(8, init_value=init, beta=beta, allow_ids=[0, 2], deny_ids=[1])


def test_update_averages_duplicates_and_leaves_absent_ids():
    t = tracker(beta=0.9)
    ids = torch.tensor([3, 3, 5, 0, 3])
    losses = torch.tensor([1.0, 2.0, 4.0, 7.0, 6.0])
    t.update(ids, losses)
    expected = [PIN, -PIN, PIN, 0.9 * 10 + 0.1 * 3.0, 10.0, 0.9 * 10 + 0.1 * 4.0, 10.0, 10.0]
    assert torch.allclose(t.get(), torch.tensor(expected))
    t.update(torch.tensor([3]), torch.tensor([1.0]))
    assert abs(t.get()[3].item() - (0.9 * 9.3 + 0.1 * 1.0)) < 1e-5


def test_pins_survive_updates_and_set():
    t = tracker()
    t.update(torch.tensor([0, 1, 2]), torch.tensor([0.5, 0.5, 0.5]))
    assert t.get()[[0, 1, 2]].tolist() == [PIN, -PIN, PIN]
    t.set(torch.zeros(8))
    assert t.get()[[0, 1, 2, 3]].tolist() == [PIN, -PIN, PIN, 0.0]


def test_non_finite_losses_are_left_out():
    t = tracker(beta=0.5)
    t.update(torch.tensor([3, 3, 4, 5]), torch.tensor([float("nan"), 2.0, float("inf"), -float("inf")]))
    got = t.get()
    assert got[3].item() == 0.5 * 10 + 0.5 * 2.0
    assert got[4].item() == 10.0 and got[5].item() == 10.0


def test_scores_stay_float32_when_the_model_is_half():
    model = build_tokendrop(token_drop=0.5).half()
    tokens = torch.tensor([[0, 5, 6, 2]])
    assert model.encoder.token_importance.position_scores(tokens).dtype == torch.float32
    model.encoder.token_importance.update(torch.tensor([5]), torch.tensor([3.0], dtype=torch.half))
    scores = get_token_importance(model)
    assert scores.dtype == torch.float32
    assert abs(scores[5].item() - (0.995 * 10 + 0.005 * 3.0)) < 1e-6  # fp16 could not hold this


def test_api_returns_a_copy_and_checks_shape():
    d = tiny_dictionary()
    model = build_tokendrop(d)
    scores = get_token_importance(model)
    assert scores.shape == (len(d),) and scores.dtype == torch.float32
    scores[10] = -5.0
    assert get_token_importance(model)[10].item() == 10.0
    set_token_importance(model, scores)
    assert get_token_importance(model)[10].item() == -5.0
    try:
        set_token_importance(model, torch.zeros(len(d) + 1))
    except ValueError as e:
        assert "one score per dictionary entry" in str(e)
    else:
        raise AssertionError("a wrong-sized score tensor was accepted")


def test_scores_travel_in_state_dict_metadata_not_as_a_key(tmp_path):
    d = tiny_dictionary()
    model = build_tokendrop(d)
    scores = torch.linspace(0, 1, len(d))
    set_token_importance(model, scores)
    expected = get_token_importance(model)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    state = torch.load(path, weights_only=True)

    stock = build_stock_roberta(d)
    assert set(state) == set(stock.state_dict())
    stock.load_state_dict(state, strict=True)  # stock RoBERTa ignores the metadata

    fresh = build_tokendrop(d, seed=1)
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(get_token_importance(fresh), expected)
