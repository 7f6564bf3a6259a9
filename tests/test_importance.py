"""The importance tracker against hand computations."""
import pytest
import torch
import torch.nn.functional as F

from fairseq_tokendrop import apply_token_importance, get_token_importance, set_token_importance
from fairseq_tokendrop.criterions.masked_lm_tokendrop import MaskedLmTokenDropConfig, MaskedLmTokenDropLoss
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.method.importance import TokenImportance
from fairseq_tokendrop.method.pins import PIN
from fairseq_tokendrop.standalone import StandaloneTask

from conftest import build_tokendrop, build_stock_roberta, random_tokens, tiny_dictionary


def tracker(beta=0.9, init=10.0):
    return TokenImportance(8, init_value=init, beta=beta, allow_ids=[0, 2], deny_ids=[1])


def test_one_update_per_step_from_all_micro_batches_duplicates_averaged():
    t = tracker(beta=0.9)
    t.accumulate(torch.tensor([3, 3, 5]), torch.tensor([1.0, 2.0, 4.0]))
    t.accumulate(torch.tensor([0, 3]), torch.tensor([7.0, 6.0]))  # a second micro-batch of the same step
    assert torch.equal(t.get(), torch.tensor([PIN, -PIN, PIN, 10, 10, 10, 10, 10.0]))  # nothing moves before the step
    assert t.apply_pending() is None  # one process: no rank check
    expected = [PIN, -PIN, PIN, 0.9 * 10 + 0.1 * 3.0, 10.0, 0.9 * 10 + 0.1 * 4.0, 10.0, 10.0]
    assert torch.allclose(t.get(), torch.tensor(expected))
    t.accumulate(torch.tensor([3]), torch.tensor([1.0]))
    t.apply_pending()
    assert abs(t.get()[3].item() - (0.9 * 9.3 + 0.1 * 1.0)) < 1e-5
    before = t.get()
    t.apply_pending()  # a step with no targets changes nothing
    assert torch.equal(t.get(), before)


def test_discarded_and_non_collected_losses_never_reach_the_scores():
    t = tracker(beta=0.5)
    t.accumulate(torch.tensor([3, 4]), torch.tensor([100.0, 100.0]))
    t.discard_pending()  # the attempt that collected them was skipped
    t.collecting = False  # a dummy micro-batch
    t.accumulate(torch.tensor([5]), torch.tensor([100.0]))
    t.collecting = True
    t.accumulate(torch.tensor([3]), torch.tensor([2.0]))
    t.apply_pending()
    assert t.get()[3:6].tolist() == [0.5 * 10 + 0.5 * 2.0, 10.0, 10.0]


def test_pins_survive_updates_and_set():
    t = tracker()
    t.accumulate(torch.tensor([0, 1, 2]), torch.tensor([0.5, 0.5, 0.5]))
    t.apply_pending()
    assert t.get()[[0, 1, 2]].tolist() == [PIN, -PIN, PIN]
    t.set(torch.zeros(8))
    assert t.get()[[0, 1, 2, 3]].tolist() == [PIN, -PIN, PIN, 0.0]


def test_non_finite_losses_are_left_out():
    t = tracker(beta=0.5)
    t.accumulate(torch.tensor([3, 3, 4, 5]), torch.tensor([float("nan"), 2.0, float("inf"), -float("inf")]))
    t.apply_pending()
    got = t.get()
    assert got[3].item() == 0.5 * 10 + 0.5 * 2.0
    assert got[4].item() == 10.0 and got[5].item() == 10.0


def test_scores_stay_float32_when_the_model_is_half():
    model = build_tokendrop(token_drop=0.5).half()
    tokens = torch.tensor([[0, 5, 6, 2]])
    assert model.encoder.token_importance.position_scores(tokens).dtype == torch.float32
    model.encoder.token_importance.accumulate(torch.tensor([5]), torch.tensor([3.0], dtype=torch.half))
    model.encoder.token_importance.apply_pending()
    scores = get_token_importance(model)
    assert scores.dtype == torch.float32
    assert abs(scores[5].item() - (0.995 * 10 + 0.005 * 3.0)) < 1e-6  # fp16 could not hold this


def test_fingerprint_sees_one_bit():
    t = tracker()
    h = t.fingerprint().item()
    scores = t.get()
    scores[4] = torch.nextafter(scores[4], torch.tensor(100.0))  # the next float32 up
    t.set(scores)
    assert t.fingerprint().item() != h


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


def masked_sample(d, masked_positions=(2, 5, 7)):
    tokens = random_tokens(d, 4, 12, seed=3)
    target = torch.full_like(tokens, d.pad())
    for i in masked_positions:
        target[:, i] = tokens[:, i]
        tokens[:, i] = d.index("<mask>")
    return {"net_input": {"src_tokens": tokens}, "target": target, "ntokens": tokens.numel(), "nsentences": 4}


@pytest.mark.parametrize("optimizer,set_to_none", [("fused_adamw", True), ("sgd", False)])
def test_a_training_loop_of_ones_own_moves_the_scores_or_is_refused(optimizer, set_to_none):
    """The Python API's training path (standalone.build_model, a loop of one's own): with
    apply_token_importance after every optimizer step the scores move as the moving average of that
    step's losses; without it the loop stops at its next step, whether the gradients are cleared
    (zero_grad's default) or the parameters stepped in place (an optimizer that is not fused)."""
    d = tiny_dictionary()
    model = build_tokendrop(d, token_drop=0.5).train()
    criterion = MaskedLmTokenDropLoss(MaskedLmTokenDropConfig(), StandaloneTask(d, 64))
    opt = (torch.optim.AdamW(model.parameters(), fused=True) if optimizer == "fused_adamw"
           else torch.optim.SGD(model.parameters(), lr=0.1))
    sample = masked_sample(d)

    def step(micro_batches=1):
        for _ in range(micro_batches):
            loss, _, _ = criterion(model, sample)
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)

    masked = sample["target"].ne(d.pad())
    targets = sample["target"][masked]
    with torch.no_grad():  # the drop pass the criterion runs next: same weights, same scores, dropout 0
        losses = F.cross_entropy(model(**sample["net_input"], masked_tokens=masked)[0], targets, reduction="none")
    expected = get_token_importance(model).double()
    for i in targets.unique().tolist():
        expected[i] = 0.995 * expected[i] + 0.005 * losses[targets == i].double().mean()
    step(micro_batches=2)  # two micro-batches of the same batch: the same mean per id
    apply_token_importance(model)
    assert torch.allclose(get_token_importance(model).double(), expected, rtol=0, atol=1e-5)
    assert not torch.equal(get_token_importance(model).double(), get_token_importance(build_tokendrop(d)).double())
    step()
    with pytest.raises(TokendropError, match=r"call fairseq_tokendrop.apply_token_importance\(model\) after every"):
        step()
