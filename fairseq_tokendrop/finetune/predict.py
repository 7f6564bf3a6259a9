"""Dev-set predictions of a ``sentence_prediction`` checkpoint, in the dev file's order.

The checkpoint is loaded with fairseq's own loader and its task reads the
binarized ``valid`` split, so the model sees exactly the ids it was trained
on; examples come back in batches of fairseq's length-sorted order and are put
back by their ids. Classes become the label dictionary's strings; a
regression output is scaled back to STS-B's 0-5.
"""
from typing import List, Union

import torch
from fairseq import checkpoint_utils

from .glue_bin import STSB_SCALE

HEAD = "sentence_classification_head"  # sentence_prediction's default --classification-head-name


@torch.no_grad()
def dev_predictions(checkpoint: str, bin_dir: str, batch_size: int = 64) -> List[Union[str, float]]:
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides={"data": bin_dir})
    model = models[0].eval()
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    batches = task.get_batch_iterator(dataset, max_sentences=batch_size, ignore_invalid_inputs=False,
                                      required_batch_size_multiple=1).next_epoch_itr(shuffle=False)
    regression = task.cfg.regression_target
    labels = task.label_dictionary
    predictions = [None] * len(dataset)
    for sample in batches:
        output, _ = model(**sample["net_input"], features_only=True, classification_head_name=HEAD)
        for example, row in zip(sample["id"].tolist(), output.float()):
            predictions[example] = (row[0].item() * STSB_SCALE if regression
                                    else labels[row.argmax().item() + labels.nspecial])
    return predictions
