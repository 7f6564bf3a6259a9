"""Token selection and gather/scatter against plain Python computations."""
import torch

from fairseq_tokendrop.method.token_selection import gather_tokens, num_kept, scatter_tokens, select_kept


def test_num_kept_follows_both_flags():
    assert num_kept(512, 0.5, 0) == 256
    assert num_kept(10, 0.15, 0) == 9  # drops floor(1.5) = 1
    assert num_kept(7, 0.0, 0) == 7
    assert num_kept(512, 0.0, 256) == 256
    assert num_kept(100, 0.0, 256) == 100  # min(K, T)


def test_select_kept_is_top_k_in_position_order_with_ties_to_earlier():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (6, 13), generator=g).float()  # many ties
    got = select_kept(scores, 5)
    for row, kept in zip(scores.tolist(), got.tolist()):
        by_rank = sorted(range(len(row)), key=lambda i: (-row[i], i))
        assert kept == sorted(by_rank[:5])


def test_pins_dominate_selection():
    scores = torch.tensor([[1e4, 3.0, -1e4, 2.0, 1e4, 5.0]])
    assert select_kept(scores, 3).tolist() == [[0, 4, 5]]


def test_gather_and_scatter_match_loops():
    T, B, C, K = 7, 3, 4, 3
    x = torch.randn(T, B, C)
    index = torch.stack([torch.randperm(T)[:K].sort().values for _ in range(B)])
    kept = gather_tokens(x, index)
    for b in range(B):
        for k in range(K):
            assert torch.equal(kept[k, b], x[index[b, k], b])

    new = torch.randn(K, B, C)
    merged = scatter_tokens(x, index, new)
    expected = x.clone()
    for b in range(B):
        for k in range(K):
            expected[index[b, k], b] = new[k, b]
    assert torch.equal(merged, expected)


def test_scatter_passes_gradients_to_both_inputs():
    x = torch.randn(5, 2, 3, requires_grad=True)
    new = torch.randn(2, 2, 3, requires_grad=True)
    index = torch.tensor([[0, 3], [1, 4]])
    scatter_tokens(x, index, new).sum().backward()
    assert new.grad.eq(1).all()
    expected = torch.ones(5, 2, 3)
    for b in range(2):
        expected[index[b], b] = 0
    assert torch.equal(x.grad, expected)
