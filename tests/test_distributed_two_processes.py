"""Two gloo processes without fairseq-train: what fairseq's broadcast of a loaded checkpoint
accepts and refuses with the plugin's allowlist, the scores' lookup after that broadcast, and the
random strategies' noise on each rank (the random selection's scores, random-LTD's layerwise draws).

fairseq's ``Trainer.load_checkpoint`` sends the state from rank 0 with
``distributed_utils.broadcast_object``: ``torch.save`` on rank 0, ``torch.load`` (torch's
``weights_only`` default) on the others. The plugin allowlists what a loaded fairseq checkpoint
needs there (an OmegaConf ``DictConfig`` cfg, fairseq's tensor placeholders); a payload hidden
inside any of those containers must still be refused, and never run.
"""
import argparse
import collections
import datetime
import io
import os
import pickle
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from fairseq.distributed import utils as distributed_utils
from omegaconf import OmegaConf

import fairseq_tokendrop  # noqa: F401  (installs the allowlist)
from fairseq_tokendrop.checkpoints.scores_after_broadcast import restore_scores_lost_in_broadcast
from fairseq_tokendrop.errors import TokendropError
from fairseq_tokendrop.method.importance import TokenImportance
from fairseq_tokendrop.method.noise import MicroBatchNoise
from fairseq_tokendrop.method.pins import PIN, Pins
from fairseq_tokendrop.method.random_ltd import draw_kept
from fairseq_tokendrop.method.strategies import RandomDropping

from test_safe_loading import Payload


def checkpoint_like_state():
    """What load_checkpoint_to_cpu hands the broadcast: cfg a DictConfig holding a Namespace."""
    cfg = OmegaConf.create({"model": argparse.Namespace(arch="tokendrop_roberta_base", encoder_layers=4),
                            "optimization": {"lr": [0.005]}}, flags={"allow_objects": True})
    return {"cfg": cfg, "model": {"encoder.w": torch.arange(4.0)}, "extra_state": {"metrics": {}}}


def random_strategy():
    """The random strategy of a 4-layer model with --seed 3, <s> allowed and <pad> (1) denied."""
    return RandomDropping(Pins(12, allow_ids=[0], deny_ids=[1]), MicroBatchNoise(seed=3), num_layers=4, padding_idx=1)


TOKENS = torch.tensor([[0, 5, 6, 7, 8, 9, 10, 1], [0, 2, 3, 4, 5, 6, 1, 1]])


def worker(rank, init_file, out_dir, marker):
    # a rank that fails leaves the other in a collective: fail the test in a minute, not gloo's 30
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    group = distributed_utils.get_data_parallel_group()
    out = {}
    got = distributed_utils.broadcast_object(checkpoint_like_state() if rank == 0 else None, 0, group)
    out["lr"], out["w"], out["arch"] = got["cfg"].optimization.lr[0], got["model"]["encoder.w"], got["cfg"].model.arch
    # the step of broadcast_object that unpickles: rank 0 sends a state with a payload inside its cfg
    evil = checkpoint_like_state()
    evil["cfg"].model.extra = Payload(marker)
    try:
        distributed_utils._broadcast_object_slow(evil if rank == 0 else None, 0, group, torch.device("cpu"))
        out["evil"] = "loaded"
    except pickle.UnpicklingError as e:
        out["evil"] = str(e)
    t = random_strategy()
    out["noise"] = [t.scores(TOKENS, 5) for _ in range(2)]  # two micro-batches of update 5
    out["ltd"] = [random_ltd_draw(t.noise, 6) for _ in range(2)]  # and two of update 6
    out["lookup"] = {name: scores_lookup(path) for name, path in (
        ("missing", f"{out_dir}/no-such-checkpoint.pt"), ("without_scores", f"{out_dir}/stock.pt"))}
    torch.save(out, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def scores_lookup(restore_file):
    """What each rank's scores become after a load that lost them in fairseq's broadcast, when fairseq
    loaded ``restore_file``: the scores, or the refusal's message."""
    tracker = TokenImportance(6, init_value=10.0, beta=0.5, allow_ids=[0], deny_ids=[1])
    tracker.missing_from_last_load = True  # what the model notes on every rank after such a load
    cfg = SimpleNamespace(restore_file=restore_file, checkpoint_suffix="", save_dir=os.path.dirname(restore_file),
                          finetune_from_model=None, continue_once=None)
    try:
        restore_scores_lost_in_broadcast(tracker, cfg, torch.device("cpu"))
    except TokendropError as e:
        return e.message
    return tracker.get()


def random_ltd_draw(noise, num_updates):
    """Random-LTD's kept positions for 3 wrapped layers, 4 of each row's 8 tokens."""
    return draw_kept(noise.generator(num_updates, TOKENS.device), TOKENS.eq(1), 3, 4)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_processes")
    torch.save({"model": {"encoder.w": torch.zeros(2)}}, root / "stock.pt")  # a checkpoint with no scores
    marker = root / "payload-ran"
    mp.spawn(worker, args=(str(root / "init"), str(root), str(marker)), nprocs=2, join=True)
    return [torch.load(root / f"rank{r}.pt") for r in (0, 1)], marker


@pytest.mark.slow
def test_fairseqs_broadcast_of_a_loaded_checkpoint_arrives_and_a_payload_in_it_is_refused(ranks):
    (rank0, rank1), marker = ranks
    for r in (rank0, rank1):
        assert r["lr"] == 0.005 and r["arch"] == "tokendrop_roberta_base" and torch.equal(r["w"], torch.arange(4.0))
    assert rank0["evil"] == "loaded"  # the sender does not unpickle
    # the payload's first global (protocol 2 reaches Path.touch through getattr) is not on the list
    assert rank1["evil"].startswith("Weights only load failed") and "Unsupported global: GLOBAL getattr" in rank1["evil"]
    assert not marker.exists()


@pytest.mark.slow
def test_a_scores_lookup_that_finds_no_file_is_refused_on_every_rank(ranks):
    (rank0, rank1), _ = ranks
    missing = rank0["lookup"]["missing"]
    assert missing == rank1["lookup"]["missing"]
    assert isinstance(missing, str) and "rank 0 cannot find the file it loaded" in missing
    assert missing.endswith("no-such-checkpoint.pt): refusing to train every rank from the initial scores")
    # a file without scores (a stock RoBERTa checkpoint) leaves the initial scores, as one rank's load does
    initial = TokenImportance(6, init_value=10.0, beta=0.5, allow_ids=[0], deny_ids=[1]).get()
    assert torch.equal(rank0["lookup"]["without_scores"], initial)
    assert torch.equal(rank1["lookup"]["without_scores"], initial)


@pytest.mark.parametrize("container", ["DictConfig", "defaultdict", "Namespace", "placeholder"])
def test_a_payload_inside_any_allowlisted_container_is_refused(tmp_path, container):
    """The receiving side of fairseq's broadcast (torch.load of the bytes, torch's default) on a
    payload hidden in each kind of object the plugin allowlists."""
    marker = tmp_path / "payload-ran"
    payload = Payload(str(marker))
    hidden = {
        "DictConfig": lambda: OmegaConf.create({"x": payload}, flags={"allow_objects": True}),
        "defaultdict": lambda: collections.defaultdict(os.system, {"x": payload}),
        "Namespace": lambda: argparse.Namespace(x=payload),
        "placeholder": lambda: distributed_utils._TensorPlaceholder(index=payload),
    }[container]()
    buffer = io.BytesIO()
    torch.save({"cfg": checkpoint_like_state()["cfg"], "model": hidden}, buffer)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu")
    assert not marker.exists()


@pytest.mark.slow
def test_random_noise_differs_per_rank_and_equals_one_process_drawing_the_union(ranks):
    (rank0, rank1), _ = ranks
    one = random_strategy()
    union = [one.scores(TOKENS, 5) for _ in range(4)]  # --update-freq 4 over the same batches
    # rank r's i-th micro-batch is the union's micro-batch i*2 + r (fairseq's batch order)
    for i in range(2):
        assert torch.equal(rank0["noise"][i], union[2 * i]) and torch.equal(rank1["noise"][i], union[2 * i + 1])
    free = (TOKENS != 0) & (TOKENS != 1)
    assert not torch.equal(rank0["noise"][0][free], rank1["noise"][0][free])
    assert not torch.equal(union[0][free], union[2][free])
    assert (union[0][TOKENS == 0] == PIN).all() and (union[0][TOKENS == 1] == -PIN).all()
    next_step = random_strategy()
    assert not torch.equal(next_step.scores(TOKENS, 6)[free], union[0][free])


@pytest.mark.slow
def test_random_ltd_draws_differ_per_rank_and_equal_one_process_drawing_the_union(ranks):
    (rank0, rank1), _ = ranks
    noise = random_strategy().noise
    union = [random_ltd_draw(noise, 6) for _ in range(4)]
    for i in range(2):
        assert torch.equal(rank0["ltd"][i], union[2 * i]) and torch.equal(rank1["ltd"][i], union[2 * i + 1])
    assert not torch.equal(rank0["ltd"][0], rank1["ltd"][0])
    assert not torch.equal(union[0], union[2])
    assert not torch.equal(union[0][0], union[0][1])  # each wrapped layer draws afresh
