"""Fine-tuning on a GLUE folder, both paths, both vocabulary kinds: the embedded Rotten Tomatoes task learned.

Each run fine-tunes a tiny model pretrained on the task's English (english_pretrained.py) on the
first 2,000 train and 2,000 dev snippets (a sample: the rows are sorted by hash), written as SST-2
is distributed, and must beat the majority class on dev.

The margin: a model that learned nothing beyond the majority answer scores m (0.58 here); one
no better than that scores above m + 3 sqrt(m (1 - m) / n) = m + 0.033 (n = 2,000) by chance
with probability about 0.1%, so the test can fail and a pass means something was learned. The
runs are seeded and single-threaded, hence repeatable on a machine; here they reach 0.644-0.685
against a bar of 0.626, so a torch or machine change that moves an accuracy by a point does not
fail them. (A bag of
words with scikit-learn's logistic regression reaches 0.70 on the same 2,000 snippets.)
"""
import json
import math
import subprocess
import sys

import pytest
import torch
from sklearn.metrics import accuracy_score

from tokendrop_readers.glue import read_split

from conftest import REPO
from english_pretrained import ONE_THREAD
from hf_isolated import run_isolated

pytestmark = pytest.mark.slow  # starts processes: not in the fast tier (tests/run.sh --fast)

# One recipe for both paths, sized for a tiny model: 4 epochs of 63 updates (it overfits after 3).
RECIPE = ["--lr", "2e-3", "--batch-size", "32", "--epochs", "4", "--seed", "1"]
Z = 3.0

HF_RUN = """
import runpy
payload_and_result, sys.argv = sys.argv, [args["script"], *args["argv"]]
try:
    runpy.run_path(args["script"], run_name="__main__")
except SystemExit as exit:
    out["exit"] = exit.code
sys.argv = payload_and_result
"""


def assert_beats_majority(result):
    n, m = result["dev_examples"], result["majority"]
    assert result["metrics"]["accuracy"] > m + Z * math.sqrt(m * (1 - m) / n), result


def gold_labels(folder):
    examples, _ = read_split(str(folder), "SST-2", "dev")
    return [e.label for e in examples]


def assert_predictions_counted(out, folder, result):
    """scikit-learn's accuracy of the written predictions, and the majority share, recounted."""
    predictions = (out / "dev_predictions.txt").read_text().split()
    gold = gold_labels(folder)
    assert accuracy_score(gold, predictions) == result["metrics"]["accuracy"]
    assert result["majority"] == max(gold.count("0"), gold.count("1")) / len(gold)
    assert json.loads((out / "metrics.json").read_text()) == result


def finetune_fairseq(folder, checkpoint, out, options=(), fairseq_train=()):
    proc = subprocess.run([sys.executable, REPO / "scripts" / "finetune_glue.py", folder, "--checkpoint", checkpoint,
                           "--out", out, *options, *RECIPE, "--", "--num-workers", "0", *fairseq_train],
                          env=ONE_THREAD, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), (out / "train.log").read_text()


def fairseq_valid_accuracy(log):
    """fairseq's own dev accuracy (its criterion's count, in percent) at the last validation."""
    records = [json.loads(line.split("| valid | ", 1)[1]) for line in log.splitlines() if "| valid | " in line]
    return float(records[-1]["valid_accuracy"])


def finetune_with_the_recipe(glue_dir, checkpoint, out):
    """examples/finetune_glue_fairseq.sh as written, on the one task folder there is (SST-2)."""
    env = dict(ONE_THREAD, GLUE_DIR=str(glue_dir), CHECKPOINT=str(checkpoint), OUT=str(out),
               FINETUNE_ARGS=" ".join(RECIPE), FAIRSEQ_ARGS="--num-workers 0", PYTHON=sys.executable)
    proc = subprocess.run(["bash", REPO / "examples" / "finetune_glue_fairseq.sh", "SST-2"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((out / "SST-2" / "metrics.json").read_text())
    assert proc.stdout.splitlines()[1].startswith(f"SST-2\t{result['score']:.4f}\taccuracy ")
    return result, (out / "SST-2" / "train.log").read_text()


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece"])
def test_stock_fairseq_fine_tune_of_an_export_learns_the_task(kind, request, rotten_tomatoes, tmp_path):
    run = request.getfixturevalue(f"english_{kind}")
    if kind == "sentencepiece":
        result, log = finetune_with_the_recipe(rotten_tomatoes["small"].parent, run["fairseq_export"] / "model.pt",
                                               tmp_path)
        out = tmp_path / "SST-2"
    else:  # A WordPiece model's fairseq export holds dict.txt but not vocab.txt, which its data dir has.
        result, log = finetune_fairseq(rotten_tomatoes["small"], run["fairseq_export"] / "model.pt", tmp_path,
                                       ["--tokenizer-dir", str(run["data"])])
        out = tmp_path
    command = log.splitlines()[0]
    assert "fairseq_cli.train | model: RobertaModel\n" in log and "--user-dir" not in command  # stock roberta
    assert ("--separator-token" in command) == (kind == "sentencepiece")  # BERT's pairs have no second </s>
    assert_beats_majority(result)
    # fairseq's criterion counted the same accuracy on its last validation, the same weights
    assert fairseq_valid_accuracy(log) == pytest.approx(100 * result["metrics"]["accuracy"], abs=0.05)
    assert_predictions_counted(out, rotten_tomatoes["small"], result)


def test_a_raw_plugin_checkpoint_starts_stock_roberta_from_its_weights(english_sentencepiece, rotten_tomatoes,
                                                                       tmp_path):
    """One update at the warmup's lr of 0: the saved encoder is the pretrained one, key for key."""
    checkpoint = english_sentencepiece["checkpoint"]
    _, log = finetune_fairseq(rotten_tomatoes["small"], checkpoint, tmp_path, fairseq_train=["--max-update", "1"])
    assert "--user-dir" in log.splitlines()[0]  # only to unpickle its argparse.Namespace
    assert "fairseq_cli.train | model: RobertaModel\n" in log
    pretrained = torch.load(checkpoint, weights_only=True)["model"]
    tuned = torch.load(tmp_path / "checkpoints" / "checkpoint_last.pt", weights_only=True)["model"]
    assert {k for k in tuned if not k.startswith("classification_heads.")} == set(pretrained)
    assert all(torch.equal(tuned[k], pretrained[k]) for k in pretrained)


def hf_token_ids(kind, run, text):
    """The export's ids of one snippet, cut as the HF script cuts to 32 tokens, by another tokenizer
    than the export's own: fairseq's dictionary over sentencepiece pieces, or transformers' Python
    BertTokenizer."""
    if kind == "sentencepiece":
        import sentencepiece
        from fairseq.data import Dictionary

        dictionary = Dictionary.load(str(run["data"] / "dict.txt"))
        pieces = sentencepiece.SentencePieceProcessor(model_file=str(run["data"] / "spm.model")).encode(text, out_type=str)
        return [0] + [dictionary.index(p) for p in pieces][:30] + [2]
    from transformers import BertTokenizer

    tokenizer = BertTokenizer(str(run["vocab"]), do_lower_case=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [tokenizer.cls_token_id] + ids[:30] + [tokenizer.sep_token_id]


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece"])
def test_hf_fine_tune_in_a_plain_python_learns_the_task(kind, request, rotten_tomatoes, tmp_path):
    run = request.getfixturevalue(f"english_{kind}")
    out = run_isolated(HF_RUN, {"script": str(REPO / "examples" / "finetune_hf.py"), "argv": [
        str(rotten_tomatoes["small"]), "--model", str(run["hf_export"]), "--out", str(tmp_path / "ft"), *RECIPE]},
        str(tmp_path))  # python -I, and it asserts that neither fairseq nor the plugin was imported
    assert out["exit"] == 0
    result = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert_beats_majority(result)
    assert_predictions_counted(tmp_path / "ft", rotten_tomatoes["small"], result)

    # The saved model, reloaded here and fed ids from another tokenizer, predicts what was written.
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "ft" / "model")).eval()
    examples, _ = read_split(str(rotten_tomatoes["small"]), "SST-2", "dev")
    written = (tmp_path / "ft" / "dev_predictions.txt").read_text().split()
    agree = 0
    for example, predicted in zip(examples[:200], written):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([hf_token_ids(kind, run, example.sentence1)])).logits
        agree += model.config.id2label[logits.argmax(-1).item()] == predicted
    assert agree == 200


def test_sts_b_pairs_fine_tune_as_a_regression_scored_by_pearson_and_spearman(english_wordpiece, rotten_tomatoes,
                                                                              tmp_path):
    """STS-B's layout (10 fields, scores 0-5): a pair of snippets scores 5 when both are fresh or both rotten.
    Not a test of learning (60 updates): of the regression path and its metrics, recounted by scipy."""
    from scipy.stats import pearsonr, spearmanr

    examples, _ = read_split(str(rotten_tomatoes["small"]), "SST-2", "train")
    folder = tmp_path / "STS-B"
    folder.mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    for split, chosen in (("train", examples[:480]), ("dev", examples[480:640])):
        rows = [f"{i}\tmain-forums\tf\t2015\t0\tnone\tnone\t{a.sentence1}\t{b.sentence1}\t"
                f"{5.0 if a.label == b.label else 0.0}\n" for i, (a, b) in enumerate(zip(chosen[::2], chosen[1::2]))]
        (folder / f"{split}.tsv").write_text(header + "".join(rows))
    result, log = finetune_fairseq(folder, english_wordpiece["fairseq_export"] / "model.pt", tmp_path / "ft",
                                   ["--tokenizer-dir", str(english_wordpiece["data"])])
    assert "--regression-target" in log.splitlines()[0] and result["majority"] is None
    predicted = [float(p) for p in (tmp_path / "ft" / "dev_predictions.txt").read_text().split()]
    gold, _ = read_split(str(folder), "STS-B", "dev")
    gold = [e.label for e in gold]
    assert len(predicted) == len(gold) == 80
    assert result["metrics"]["pearson"] == pytest.approx(pearsonr(predicted, gold)[0], abs=1e-9)
    assert result["metrics"]["spearman"] == pytest.approx(spearmanr(predicted, gold)[0], abs=1e-9)
