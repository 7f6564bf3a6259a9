"""Every load checks the checkpoint: torch's CRC-32 of each record, a file cut short, non-finite scores.

The oracle for "damaged" is Python's own ``zipfile`` (``testzip`` reads every record and checks its
CRC-32, independently of ``verification.py``'s own reading); the flips are placed by finding a
tensor's bytes in the file, not through the archive's directory.
"""
import logging
import mmap
import os
import random
import re
import zipfile

import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from fairseq_tokendrop.checkpoints.checkpoint_io import atomic_torch_save, fresh_training_state, training_cfg
from fairseq_tokendrop.checkpoints.safe_loading import load_checkpoint
from fairseq_tokendrop.checkpoints.scores_in_state_dict import METADATA_KEY
from fairseq_tokendrop.checkpoints.verification import damage, record_span, unmatched_records
from fairseq_tokendrop.errors import TokendropError

from conftest import build_stock_roberta, build_tokendrop, load_script, tiny_dictionary, train_flags, TINY_DIMS

SCORES = "model._metadata['encoder.token_importance']['token_importance']"
WEIGHT = "model['encoder.sentence_encoder.layers.2.fc1.weight']"
MOMENT = "last_optimizer_state['state'][5]['exp_avg']"


def trained_checkpoint(path, dictionary=None):
    """A tokendrop checkpoint as fairseq-train writes one: weights, scores off their init, Adam moments."""
    model = build_tokendrop(dictionary, seed=3)
    scores = model.encoder.token_importance.get()
    model.encoder.token_importance.set(scores + torch.rand(scores.shape, generator=torch.Generator().manual_seed(1)))
    optimizer = torch.optim.Adam(model.parameters())
    sum((p * torch.randn_like(p)).sum() for p in model.parameters()).backward()
    optimizer.step()
    args = dict(TINY_DIMS, max_positions=64, activation_fn="gelu")
    state = fresh_training_state(training_cfg("data-bin", "tokendrop_roberta_base", args), model.state_dict(),
                                 "MaskedLmTokenDropLoss", num_updates=7)
    state["last_optimizer_state"] = optimizer.state_dict()
    atomic_torch_save(state, str(path))
    return state


def tensor_bytes(tensor) -> bytes:
    return tensor.contiguous().numpy().tobytes()


def named(state, name):
    """The tensor at a place named as ``verification.tensors_in`` names it, looked up by hand."""
    if name == SCORES:
        return state["model"]._metadata["encoder.token_importance"][METADATA_KEY]
    if name == WEIGHT:
        return state["model"]["encoder.sentence_encoder.layers.2.fc1.weight"]
    return state["last_optimizer_state"]["state"][5]["exp_avg"]


def flip(path, offset, bit=0x10):
    data = bytearray(path.read_bytes())
    data[offset] ^= bit
    path.write_bytes(bytes(data))


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "checkpoint_last.pt"
    return path, trained_checkpoint(path)


def test_a_whole_checkpoint_passes_and_loads_into_stock_roberta_strictly(checkpoint):
    path, _ = checkpoint
    assert damage(str(path)) is None
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None and all(r.CRC for r in archive.infolist())  # torch wrote every CRC-32
    build_stock_roberta(tiny_dictionary()).load_state_dict(load_checkpoint(str(path))["model"], strict=True)


@pytest.mark.parametrize("name", [WEIGHT, SCORES, MOMENT])
def test_a_flipped_byte_in_a_tensor_is_refused_naming_the_file_and_the_tensor(checkpoint, name):
    path, state = checkpoint
    data = path.read_bytes()
    needle = tensor_bytes(named(state, name))
    assert data.count(needle) == 1
    flip(path, data.index(needle) + len(needle) // 2)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is not None  # the oracle sees the damage
    assert torch.load(path, weights_only=True) is not None  # torch alone loads it silently
    with pytest.raises(TokendropError) as refused:
        load_checkpoint(str(path))
    message = str(refused.value)
    assert message == f"fairseq_tokendrop: error: refused {path}: {name} does not match its CRC-32"


def test_the_crc_catches_a_flipped_bit_in_any_record(tmp_path):
    """The check is CRC-32 (it catches any error burst up to 32 bits): one random bit flipped in a record
    (the pickle, and 30 of the tensors' records drawn at random) is caught every time, in that record and
    no other."""
    path = tmp_path / "c.pt"
    trained_checkpoint(path)
    original = bytes(path.read_bytes())
    rng = random.Random(0)
    with zipfile.ZipFile(path) as archive:
        records = [r for r in archive.infolist() if r.file_size]
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        spans = {r.filename: record_span(data, r) for r in records}
    pickle = [r for r in records if r.filename.endswith("/data.pkl")]
    tensors = [r for r in records if "/data/" in r.filename]
    assert len(pickle) == 1 and len(tensors) > 100
    for record in pickle + rng.sample(tensors, 30):
        start, end = spans[record.filename]
        damaged = bytearray(original)
        damaged[rng.randrange(start, end)] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(damaged))
        with zipfile.ZipFile(path) as archive, pytest.raises(zipfile.BadZipFile, match="Bad CRC-32"):
            archive.read(record.filename)  # the flip is inside this record's bytes
        problem, unmatched = unmatched_records(str(path))
        assert problem is None and [r.filename for r, _ in unmatched] == [record.filename]


@pytest.mark.parametrize("keep", [0, 1000, 0.5, -1])
def test_a_file_cut_short_is_refused_in_one_line(checkpoint, keep):
    path, _ = checkpoint
    size = path.stat().st_size
    os.truncate(path, int(size * keep) if isinstance(keep, float) else keep % size)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)  # torch cannot read it either
    with pytest.raises(TokendropError, match=r"^fairseq_tokendrop: error: refused .*checkpoint_last.pt: it is "
                                             r"(empty|cut short)"):
        load_checkpoint(str(path))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_score_is_refused_by_every_loader(tmp_path, bad):
    path = tmp_path / "c.pt"
    state = trained_checkpoint(path)
    named(state, SCORES)[6] = bad
    atomic_torch_save(state, str(path))
    assert damage(str(path)) is None  # a whole file: its CRC-32s match what was written
    with pytest.raises(TokendropError) as refused:
        load_checkpoint(str(path))
    assert refused.value.message == (f"refused {path}: model._metadata['encoder.token_importance'] (the importance "
                                     f"scores) holds a non-finite score (entry 6: {bad})")
    # any load_state_dict into the plugin's model, fairseq's own included
    with pytest.raises(TokendropError, match=rf"non-finite score \(entry 6: {bad}\)"):
        build_tokendrop().load_state_dict(state["model"])


def test_the_commands_refuse_a_damaged_checkpoint_in_one_line(checkpoint, tmp_path):
    path, state = checkpoint
    data = path.read_bytes()
    flip(path, data.index(tensor_bytes(named(state, WEIGHT))) + 8)
    expected = f"refused {path}: {WEIGHT} does not match its CRC-32"
    export = load_script("export_checkpoint")
    eval_mlm = load_script("eval_mlm_accuracy")
    import_sctd = load_script("import_sctd")
    for run in (lambda: export.main([str(path), "--save-importance", str(tmp_path / "imp.pt")]),
                lambda: eval_mlm.load_model(str(path), str(tmp_path), "cpu"),
                lambda: import_sctd.convert(str(path), str(tmp_path / "imported"))):
        with pytest.raises(TokendropError) as refused:
            run()
        assert refused.value.message == expected
    assert not (tmp_path / "imp.pt").exists() and not (tmp_path / "imported").exists()
    # an HF directory's pytorch_model.bin is a torch zip too
    hf = tmp_path / "hf"
    hf.mkdir()
    torch.save(state["model"].copy(), hf / "pytorch_model.bin")
    data = (hf / "pytorch_model.bin").read_bytes()
    flip(hf / "pytorch_model.bin", data.index(tensor_bytes(named(state, WEIGHT))) + 8)
    with pytest.raises(TokendropError) as refused:
        load_script("import_hf").read_weights(str(hf))
    bin_path = hf / "pytorch_model.bin"
    assert refused.value.message == f"refused {bin_path}: encoder.sentence_encoder.layers.2.fc1.weight does not match its CRC-32"


def training_setup(data_bin, save_dir, *extra):
    """What fairseq-train does first with these flags: parse them, then set up the task."""
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(a) for a in train_flags(data_bin, save_dir, "--cpu", "--token-drop", "0.5", *extra)])
    cfg = convert_namespace_to_omegaconf(args)
    tasks.setup_task(cfg.task)
    return cfg


def test_a_resume_falls_back_from_a_damaged_checkpoint_last_to_the_newest_whole_one(data_bin, tmp_path, caplog):
    save_dir = tmp_path / "save"
    save_dir.mkdir()
    older, newest, last = (save_dir / n for n in ("checkpoint_1_2.pt", "checkpoint_1_3.pt", "checkpoint_last.pt"))
    for path in (older, newest, last):
        trained_checkpoint(path)
    os.utime(older, (1, 1))
    os.truncate(newest, newest.stat().st_size - 10)  # the newest is torn too: the older whole one is next
    os.truncate(last, last.stat().st_size // 2)
    (save_dir / "checkpoint_1_4.pt.tmp-123").write_bytes(b"left by a killed save")
    with caplog.at_level(logging.INFO):
        cfg = training_setup(data_bin, save_dir)
    assert cfg.checkpoint.restore_file == str(older)
    fell_back = [r.getMessage() for r in caplog.records if "resuming from" in r.getMessage()]
    assert len(fell_back) == 1 and fell_back[0].startswith(f"{last} is unusable (it is cut short")
    assert fell_back[0].endswith(f"resuming from {older}, the newest whole checkpoint in {save_dir}")
    assert not (save_dir / "checkpoint_1_4.pt.tmp-123").exists()


def test_a_resume_with_no_whole_checkpoint_or_a_damaged_restore_file_is_refused(data_bin, tmp_path):
    save_dir = tmp_path / "save"
    save_dir.mkdir()
    last = save_dir / "checkpoint_last.pt"
    trained_checkpoint(last)
    os.truncate(last, 100)
    with pytest.raises(TokendropError, match=rf"refused {re.escape(str(last))}: it is cut short .* no other whole "
                                             rf"checkpoint in {re.escape(str(save_dir))} to resume from$"):
        training_setup(data_bin, save_dir)
    os.remove(last)  # a first start: --finetune-from-model is what fairseq would load
    restore = tmp_path / "chosen.pt"
    state = trained_checkpoint(restore)
    data = restore.read_bytes()
    flip(restore, data.index(tensor_bytes(named(state, MOMENT))))
    for flag in ("--restore-file", "--finetune-from-model"):  # never replaced by another file
        with pytest.raises(TokendropError) as refused:
            training_setup(data_bin, save_dir, flag, restore)
        assert refused.value.message == f"refused {flag} {restore}: {MOMENT} does not match its CRC-32"
