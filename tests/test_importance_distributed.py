"""Two real processes (gloo): every rank ends with the scores of the union of both ranks' batches,
and the one all-reduce per step also tells whether the ranks held the same scores."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fairseq_tokendrop.method.importance import TokenImportance
from fairseq_tokendrop.method.pins import PIN

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

MICRO_BATCHES = [  # per rank, two micro-batches of one step; id 3 is a target on both ranks, 6 on one only
    [(torch.tensor([3, 5]), torch.tensor([1.0, 2.0])), (torch.tensor([3]), torch.tensor([3.0]))],
    [(torch.tensor([3, 6, 0]), torch.tensor([8.0, 4.0, 9.0])), (torch.tensor([6]), torch.tensor([float("nan")]))],
]


def tracker():
    return TokenImportance(8, init_value=10.0, beta=0.5, allow_ids=[0], deny_ids=[1])


def worker(rank, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    t = tracker()
    for ids, losses in MICRO_BATCHES[rank]:
        t.accumulate(ids, losses)
    agreed = t.apply_pending()
    after_first = t.get()
    if rank == 1:  # a rank that drifted: one score one float32 step away
        drifted = t.get()
        drifted[7] = torch.nextafter(drifted[7], torch.tensor(0.0))
        t.set(drifted)
    drifted_check = t.apply_pending()  # nothing pending here: the rank still joins the collective
    torch.save({"scores": after_first, "mismatch": [agreed.item(), drifted_check.item()]},
               f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ranks_hold_identical_scores_of_the_union_and_detect_drift(tmp_path):
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(rank0["scores"], rank1["scores"])
    union_mean = {3: (1.0 + 3.0 + 8.0) / 3, 5: 2.0, 6: 4.0}  # the NaN loss of id 6 is left out
    expected = [PIN, -PIN, 10.0, 0, 10.0, 0, 0, 10.0]
    for i, mean in union_mean.items():
        expected[i] = 0.5 * 10.0 + 0.5 * mean
    assert torch.allclose(rank0["scores"], torch.tensor(expected))
    assert rank0["mismatch"] == rank1["mismatch"] == [False, True]
