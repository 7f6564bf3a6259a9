"""The random strategies' kept sets as a distribution: each draw uniform, all draws independent.

Random selection (``--token-drop-strategy random``, one kept set per micro-batch) and random-LTD
(``random-ltd``, one kept set per wrapped layer, ``random_ltd.draw_kept``) drawn through the model, over many updates, micro-batches
and two ``--seed``s, and held against what the documented draw implies (docs/usage.md, random_ltd.py):

- a row with n free real positions, k of them to draw, keeps each with probability k/n and each pair with
  k(k-1)/(n(n-1)) (a uniform k-subset); allow-list positions (``<s>``, ``</s>``) always, padding only once
  the real tokens run out, earliest first;
- different rows, layers, micro-batches, updates and seeds are independent: two of them keep positions
  a and b together with probability p_a p_b;
- the same seed, update and micro-batch draw the same set again.

Every count of positions kept alone or together is held against its exact binomial law (scipy.stats), the
kept frequencies together against Pearson's chi-square, at a false-failure probability of at most ALPHA per
test (Bonferroni over every cell checked); the cells with probability 0 or 1 must be exact.
"""
import numpy as np
import pytest
import torch
from scipy.stats import binom, chi2

from fairseq_tokendrop.standalone import build_model

from conftest import TINY_DIMS, random_tokens, tiny_dictionary

ALPHA = 1e-6
T, K = 16, 8
PAD_TAIL = (0, 0, 5, 11)  # real lengths 16, 16, 11 and 5 (fewer than K)
SEEDS, UPDATES, MICRO_BATCHES = (1, 2), 10, 40


def build(strategy, seed):
    return build_model("tokendrop_roberta_base", tiny_dictionary(), **TINY_DIMS, token_drop=0.5,
                       token_drop_strategy=strategy, seed=seed).train()


def kept_cells(strategy, model, tokens):
    """Which positions one forward keeps, ``[L, B, T]`` bool (L: the wrapped layers, 1 for random selection)."""
    index = model.encoder.plan(tokens).index  # random-LTD's [L, B, K]; the random strategy's [B, K]
    if strategy != "random-ltd":
        index = index[None]
    return torch.zeros(index.shape[:2] + (T,), dtype=torch.bool).scatter_(2, index, True)


def draws(strategy, seed, tokens, updates=UPDATES):
    """``[updates, MICRO_BATCHES, L*B*T]`` kept cells of every micro-batch of every update."""
    model = build(strategy, seed)
    out = []
    for update in range(updates):
        model.set_num_updates(update)
        out.append(torch.stack([kept_cells(strategy, model, tokens).flatten() for _ in range(MICRO_BATCHES)]))
    return torch.stack(out)


def expected_layout(strategy, layers):
    """Per cell ``[L*B*T]``: the probability it is kept, and which (layer, row) draw it belongs to;
    ``free``: the cells drawn at random; ``pair``: the probability that two free cells of one draw are
    kept together. Worked from the documented draw, not from the code."""
    marginal, group, free, pair = [], [], [], []
    pinned = 2 if strategy == "random" else 0  # <s> at 0 and </s> at the last real position
    for layer in range(layers):
        for row, n_pad in enumerate(PAD_TAIL):
            real = T - n_pad
            n, k = real - pinned, K - pinned
            for pos in range(T):
                if real < K:  # every real token, then the earliest padding
                    p, drawn = float(pos < K), False
                elif pos >= real:
                    p, drawn = 0.0, False
                elif pinned and pos in (0, real - 1):
                    p, drawn = 1.0, False
                else:
                    p, drawn = k / n, True
                marginal.append(p)
                group.append(layer * len(PAD_TAIL) + row)
                free.append(drawn)
                pair.append(k * (k - 1) / (n * (n - 1)) if drawn else 0.0)
    return (torch.tensor(marginal, dtype=torch.float64), torch.tensor(group), torch.tensor(free),
            torch.tensor(pair, dtype=torch.float64))


def cell(i):
    """``(layer, row, position)`` of a flat cell index."""
    return int(i) // (len(PAD_TAIL) * T), int(i) // T % len(PAD_TAIL), int(i) % T


def assert_binomial(what, counts, trials, probs, alpha):
    """Each joint count ``[C, C]`` ~ Binomial(trials, prob): two-sided exact p-values above alpha / C^2."""
    counts, probs = counts.double().numpy(), probs.numpy()
    p_values = 2 * np.minimum(binom.cdf(counts, trials, probs), binom.sf(counts - 1, trials, probs))
    a, b = np.unravel_index(p_values.argmin(), p_values.shape)
    assert p_values[a, b] > alpha / p_values.size, (
        f"{what}: (layer, row, position) {cell(a)} and {cell(b)} kept together {counts[a, b]:.0f} times "
        f"of {trials}, expected {trials * probs[a, b]:.1f}")


STRATEGIES = {"random": 1, "random-ltd": 4}  # strategy: how many draws a forward makes (wrapped layers)


@pytest.fixture(scope="module", params=list(STRATEGIES))
def drawn(request):
    """(strategy, the tokens, the kept cells of the first seed and of the second, the expected layout)."""
    strategy = request.param
    tokens = random_tokens(tiny_dictionary(), len(PAD_TAIL), T, pad_tail=PAD_TAIL)
    first, second = (draws(strategy, seed, tokens) for seed in SEEDS)
    return strategy, tokens, first, second, expected_layout(strategy, STRATEGIES[strategy])


def test_each_draw_is_a_uniform_subset_of_the_real_tokens_padding_last(drawn):
    strategy, _, first, second, (marginal, group, free, pair) = drawn
    # padding last: never drawn from row 2 (11 real tokens); row 3 (5 real) keeps its first K positions
    rows = first.view(UPDATES, MICRO_BATCHES, STRATEGIES[strategy], len(PAD_TAIL), T)
    assert not rows[..., 2, T - PAD_TAIL[2]:].any()
    assert rows[..., 3, :].eq(torch.arange(T) < K).all()

    # free positions equally likely: Pearson's statistic of a uniform k-of-n draw, whose counts have
    # covariance N p(1-p) n/(n-1) (I - J/n), summed over the independent draws (rows, layers); asymptotic
    both = torch.cat([first, second]).flatten(0, 1).double()
    trials, counts = both.size(0), both.sum(0)
    statistic, df = 0.0, 0
    for g in group[free].unique():
        cells = free & (group == g)
        n, p = int(cells.sum()), float(marginal[cells][0])
        statistic += float(((counts[cells] - trials * p) ** 2).sum()) * (n - 1) / (n * trials * p * (1 - p))
        df += n - 1
    assert chi2.sf(statistic, df) > ALPHA / 2, f"kept frequencies not uniform: chi2 {statistic:.1f} on {df} df"

    # positions kept alone (the diagonal) and in pairs: within a row as a uniform k-subset, across rows and
    # layers independently; pinned and padding cells exactly
    within = marginal[:, None] * marginal[None, :]
    same_draw = (group[:, None] == group[None, :]) & free[:, None] & free[None, :]
    within[same_draw] = pair[:, None].expand_as(within)[same_draw]
    within.diagonal().copy_(marginal)
    assert_binomial("one draw", both.t() @ both, trials, within, ALPHA / 2)


def test_micro_batches_updates_and_seeds_draw_independently(drawn):
    _, _, first, second, (marginal, *_) = drawn

    def paired(what, a, b):  # disjoint pairs of draws: independent trials
        a, b = a.flatten(0, -2).double(), b.flatten(0, -2).double()
        assert_binomial(what, a.t() @ b, a.size(0), marginal[:, None] * marginal[None, :], ALPHA / 3)

    paired("next micro-batch", first[:, 0::2], first[:, 1::2])
    paired("next update", first[0::2], first[1::2])
    paired("other seed", first, second)


def test_the_same_seed_update_and_micro_batch_draw_the_same_again(drawn):
    strategy, tokens, first, *_ = drawn
    assert torch.equal(draws(strategy, SEEDS[0], tokens, updates=2), first[:2])  # a fresh model, as on resume
