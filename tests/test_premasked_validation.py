"""Evaluation batches hold every example, at any batch size and world size; training keeps fairseq's batching.

fairseq's ``data_utils.batch_by_size`` drops a last batch whose size is not a
multiple of ``--required-batch-size-multiple`` (default 8), in validation too
(fairseq issue 5036). The task's batch iterator is taken here as fairseq-train
takes it, for a raw-text data-bin (fairseq-preprocess) and for a pre-masked
dir, and each example is counted across the shards fairseq gives the ranks.
The end-to-end check (validation's mlm_acc equals the eval script's on a
23-example eval set) is in test_eval_mlm_accuracy.py.
"""
import collections

import pytest

from fairseq_tokendrop.tasks.masked_lm_tokendrop import MaskedLMTokenDropConfig, MaskedLMTokenDropTask

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)


def examples_served(task, split, batch_size, world_size, multiple=8):
    """How often each example index appears in the batches of all ranks' shards."""
    seen = collections.Counter()
    for rank in range(world_size):
        epoch = task.get_batch_iterator(dataset=task.dataset(split), max_sentences=batch_size,
                                        required_batch_size_multiple=multiple, num_shards=world_size,
                                        shard_id=rank, seed=1, epoch=1, disable_iterator_cache=True)
        for batch in epoch.next_epoch_itr(shuffle=False):
            seen.update(batch["id"].tolist() if batch else [])  # a rank out of batches gets an empty one
    return seen


def task_on(data):
    task = MaskedLMTokenDropTask.setup_task(MaskedLMTokenDropConfig(data=str(data), tokens_per_sample=32, seed=3))
    for split in ("train", "valid"):
        task.load_dataset(split)
    return task


@pytest.mark.parametrize("batch_size,world_size", [(8, 1), (8, 2), (5, 3)])
def test_every_validation_example_is_served_once(data_bin, premasked, batch_size, world_size):
    for task in (task_on(data_bin), task_on(premasked["dest"])):
        size = len(task.dataset("valid"))
        assert size % batch_size and size % 8  # a short last batch, which fairseq would drop
        assert examples_served(task, "valid", batch_size, world_size) == collections.Counter(range(size))


def test_training_batches_stay_fairseqs(premasked):
    """Only evaluation changes: training still drops the examples of a last batch short of the multiple."""
    task = task_on(premasked["dest"])
    size = len(task.dataset("train"))
    assert size % 8
    served = examples_served(task, "train", 8, 1)
    assert sum(served.values()) == size - size % 8 and max(served.values()) == 1
