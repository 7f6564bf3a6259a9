"""finetune_glue on input it cannot use: one line naming the task, file and line, or checkpoint; nothing trained.

In-process and before any fairseq-train starts: a tiny random model saved as a plugin checkpoint
over a WordPiece vocabulary (premasked_fixtures' vocab.txt).
"""
import pytest
import torch

from fairseq_tokendrop.checkpoints.checkpoint_io import fresh_training_state, training_cfg
from fairseq_tokendrop.data.wordpiece_dictionary import wordpiece_to_fairseq, write_dict_txt

from conftest import TINY_DIMS, build_tokendrop, load_script
from premasked_fixtures import vocab_tokens, write_vocab


def save_checkpoint(data, path, **overrides):
    dictionary, _ = wordpiece_to_fairseq(str(data / "vocab.txt"))
    dims = {**TINY_DIMS, **overrides}
    flags = [f"--num-segment={overrides['num_segment']}"] if "num_segment" in overrides else []
    cfg = training_cfg(str(data), "tokendrop_roberta_base", dims, *flags)
    torch.save(fresh_training_state(cfg, build_tokendrop(dictionary, **overrides).state_dict(), "x"), path)
    return path


@pytest.fixture
def model(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_vocab(data / "vocab.txt", vocab_tokens())
    write_dict_txt(wordpiece_to_fairseq(str(data / "vocab.txt"))[0], str(data / "dict.txt"))
    return data, save_checkpoint(data, tmp_path / "checkpoint.pt")


def sst2(folder, rows):
    folder.mkdir(exist_ok=True)
    for split in ("train", "dev"):
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(r + "\n" for r in rows))
    return folder


def refused(argv):
    with pytest.raises(SystemExit) as info:
        load_script("finetune_glue").main([str(a) for a in argv])
    message = str(info.value)
    assert "\n" not in message and message.startswith("fairseq_tokendrop: error: "), message
    return message[len("fairseq_tokendrop: error: "):]


def test_an_unknown_task_or_folder_name(model, tmp_path):
    data, checkpoint = model
    folder = sst2(tmp_path / "reviews", ["w1 w2\t1"])
    assert refused([folder, "--task", "SST", "--checkpoint", checkpoint, "--out", tmp_path / "o"]).startswith(
        "unknown GLUE task 'SST': expected one of CoLA, SST-2")
    assert "the folder's name 'reviews' is no GLUE task" in refused([folder, "--checkpoint", checkpoint, "--out",
                                                                     tmp_path / "o"])


def test_a_row_that_does_not_fit_names_its_file_and_line(model, tmp_path):
    data, checkpoint = model
    folder = sst2(tmp_path / "SST-2", ["w1 w2\t1", "w3\t0", "w4 w5\textra\t1"])
    message = refused([folder, "--checkpoint", checkpoint, "--out", tmp_path / "o"])
    assert message.startswith(f"{folder / 'train.tsv'}: line 4: 3 tab-separated field(s), expected 2")
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_a_checkpoint_with_segments_or_another_dictionary(model, tmp_path):
    data, checkpoint = model
    folder = sst2(tmp_path / "SST-2", ["w1 w2\t1"])
    segments = save_checkpoint(data, tmp_path / "segments.pt", num_segment=2)
    assert "segment embeddings, which stock fairseq RoBERTa lacks" in refused(
        [folder, "--checkpoint", segments, "--out", tmp_path / "o"])
    other = tmp_path / "other"
    other.mkdir()
    write_vocab(other / "vocab.txt", vocab_tokens(extra_words=5))
    message = refused([folder, "--checkpoint", checkpoint, "--tokenizer-dir", other, "--out", tmp_path / "o"])
    assert message.startswith(f"{checkpoint} has {len(vocab_tokens()) + 1} embedding rows and WordPiece")
    assert "not the model's dictionary" in message
    assert "no such checkpoint" in refused([folder, "--checkpoint", tmp_path / "none.pt", "--out", tmp_path / "o"])


def test_an_export_without_its_tokenizer_says_where_to_find_one(model, tmp_path):
    data, checkpoint = model
    export = tmp_path / "export"
    export.mkdir()
    (export / "dict.txt").write_bytes((data / "dict.txt").read_bytes())  # as --fairseq-out of a WordPiece model
    (export / "model.pt").write_bytes(checkpoint.read_bytes())
    message = refused([sst2(tmp_path / "SST-2", ["w1\t1"]), "--checkpoint", export / "model.pt", "--out",
                       tmp_path / "o"])
    assert message.startswith(f"{export}: dict.txt but no tokenizer") and "--tokenizer-dir" in message
