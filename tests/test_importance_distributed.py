"""Two real processes (gloo): every rank ends with the scores of the union of both ranks' batches."""
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fairseq_tokendrop.importance import PIN, TokenImportance

BATCHES = [  # (ids, losses) per rank; id 3 is a target on both ranks, 6 on one only
    (torch.tensor([3, 5, 3]), torch.tensor([1.0, 2.0, 3.0])),
    (torch.tensor([3, 6, 0]), torch.tensor([8.0, 4.0, 9.0])),
]


def tracker():
    return TokenImportance(8, init_value=10.0, beta=0.5, allow_ids=[0], deny_ids=[1])


def worker(rank, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    t = tracker()
    t.update(*BATCHES[rank])
    torch.save(t.get(), f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ranks_hold_identical_scores_of_the_union(tmp_path):
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(rank0, rank1)
    union_mean = {3: (1.0 + 3.0 + 8.0) / 3, 5: 2.0, 6: 4.0}
    expected = [PIN, -PIN, 10.0, 0, 10.0, 0, 0, 10.0]
    for i, mean in union_mean.items():
        expected[i] = 0.5 * 10.0 + 0.5 * mean
    assert torch.allclose(rank0, torch.tensor(expected))
