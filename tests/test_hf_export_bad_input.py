"""export_checkpoint --hf-out on bad input: one line naming the file, and no export directory unless whole."""
import json
import shutil

import pytest

from conftest import load_script
from premasked_fixtures import vocab_tokens, write_vocab

pytestmark = pytest.mark.slow  # fixtures that train with fairseq-train


def refused(argv):
    with pytest.raises(SystemExit) as exit_info:
        load_script("export_checkpoint").main([str(a) for a in argv])
    message = str(exit_info.value.code)
    assert message.startswith("fairseq_tokendrop: error: ") and "\n" not in message, message
    return message


def data_copy(premasked, tmp_path, *names):
    """The converted data dir's ``names`` only, in a dir of their own."""
    data = tmp_path / "data"
    data.mkdir()
    for name in names:
        shutil.copyfile(premasked["dest"] / name, data / name)
    return data


@pytest.fixture
def checkpoint(trained):
    return trained["save"] / "checkpoint_last.pt"


def nothing_written(tmp_path):
    return not (tmp_path / "out").exists() and not list(tmp_path.glob("out.*"))


def test_pre_masked_data_without_its_vocab_txt_asks_for_it(premasked, checkpoint, tmp_path):
    data = data_copy(premasked, tmp_path, "dict.txt", "premasked.json")
    message = refused([checkpoint, "--hf-out", tmp_path / "out", "--data", data])
    assert "premasked.json" in message and "--vocab" in message
    assert nothing_written(tmp_path)


def test_a_vocab_txt_the_data_was_not_converted_with_is_named(premasked, checkpoint, tmp_path):
    other = write_vocab(tmp_path / "other_vocab.txt", vocab_tokens(extra_words=3))
    message = refused([checkpoint, "--hf-out", tmp_path / "out", "--vocab", other])
    assert str(other) in message and "sha256" in message
    assert nothing_written(tmp_path)


def test_a_vocab_txt_that_does_not_fit_the_embedding_rows_is_named(premasked, checkpoint, tmp_path):
    data = data_copy(premasked, tmp_path, "dict.txt")  # no premasked.json: nothing to check the file's bytes against
    other = write_vocab(tmp_path / "other_vocab.txt", vocab_tokens(extra_words=3))
    message = refused([checkpoint, "--hf-out", tmp_path / "out", "--data", data, "--vocab", other])
    assert str(other) in message and "embedding rows" in message
    assert nothing_written(tmp_path)  # refused while the directory was being built: no trace of it


def test_no_tokenizer_source_names_the_files_looked_for(premasked, checkpoint, tmp_path):
    data = data_copy(premasked, tmp_path, "dict.txt")
    message = refused([checkpoint, "--hf-out", tmp_path / "out", "--data", data])
    assert "spm.model or sentencepiece.bpe.model" in message and str(data) in message
    assert nothing_written(tmp_path)
    assert "no such file: " + str(tmp_path / "missing.txt") in refused(
        [checkpoint, "--hf-out", tmp_path / "out", "--vocab", tmp_path / "missing.txt"])


def test_a_directory_holding_other_files_is_left_alone(checkpoint, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert "notes.txt" in refused([checkpoint, "--hf-out", tmp_path / "out"])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


def test_an_earlier_export_is_replaced_whole(checkpoint, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tokenizer.json").write_text("{}")  # a sentencepiece export's file, not a BERT's
    load_script("export_checkpoint").main([str(checkpoint), "--hf-out", str(tmp_path / "out")])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary or old directory left
