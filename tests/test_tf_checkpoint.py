"""tokendrop_readers.tf_checkpoint against what TensorFlow itself reads from the files it wrote.

The fixtures (tests/fixtures/tf_bert, made by make_tf_fixtures.py in a TensorFlow
environment) carry, for every tensor of each checkpoint, the dtype, shape and
SHA-256 of the value ``tf.train.load_checkpoint`` returned, and for the TF2
checkpoints the object graph as TensorFlow's protobuf parser reads it. The
CRC-32C is checked against the ``crc32c`` package, an implementation of its own.
"""
import hashlib
import json
import shutil

import crc32c as crc32c_package
import numpy as np
import pytest

from tokendrop_readers.crc32c import crc32c, masked_crc32c
from tokendrop_readers.tf_checkpoint import CheckpointError, TFCheckpoint

from conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "tf_bert"
CHECKPOINTS = ("tf1", "tf2_bert", "tf2_tokendrop")


def metadata():
    return json.loads((FIXTURES / "metadata.json").read_text())


def digest(value):
    if isinstance(value, list):  # a string tensor: the object graph, a scalar
        return hashlib.sha256(value[0]).hexdigest()
    return hashlib.sha256(value.astype(value.dtype.newbyteorder("<")).tobytes()).hexdigest()


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_every_tensor_equals_what_tensorflow_read(name):
    expected = json.loads((FIXTURES / name / "variables.json").read_text())
    checkpoint = TFCheckpoint(str(FIXTURES / name))
    assert sorted(checkpoint.entries) == sorted(expected)
    for tensor, entry in checkpoint.entries.items():
        value = checkpoint.read(tensor)
        want = expected[tensor]
        assert (entry.dtype, list(entry.shape)) == (want["dtype"], want["shape"]), tensor
        assert digest(value).startswith(want["sha256"]), tensor


@pytest.mark.parametrize("name", ["tf2_bert", "tf2_tokendrop"])
def test_the_object_graph_names_equal_tensorflows_parse(name):
    expected = metadata()["checkpoints"][name]["object_graph_full_names"]
    names = TFCheckpoint(str(FIXTURES / name)).variable_names()
    assert {key: name for key, name in names.items() if ".OPTIMIZER_SLOT" not in key} == expected


def test_a_tf1_checkpoint_has_no_object_graph():
    assert TFCheckpoint(str(FIXTURES / "tf1")).variable_names() == {}


def test_crc32c_equals_another_implementation_at_every_length():
    assert crc32c(b"123456789") == 0xE3069283  # the check value of RFC 3720's CRC-32C
    rng = np.random.default_rng(0)
    for size in (0, 1, 3, 4, 15, 16, 17, 255, 4099, 65537, 1 << 20, 999_999):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert crc32c(data) == crc32c_package.crc32c(data), size
    values = rng.standard_normal((37, 11)).astype(np.float32)
    assert crc32c(values) == crc32c_package.crc32c(values.tobytes())
    crc = crc32c_package.crc32c(b"abc")
    assert masked_crc32c(b"abc") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@pytest.mark.parametrize("form", ["folder", "prefix", "index", "data"])
def test_a_checkpoint_is_named_by_its_folder_prefix_or_files(form):
    prefix = FIXTURES / "tf1" / "model.ckpt-3"
    path = {"folder": prefix.parent, "prefix": prefix, "index": f"{prefix}.index",
            "data": f"{prefix}.data-00000-of-00001"}[form]
    assert TFCheckpoint(str(path)).prefix == str(prefix)


def copy_checkpoint(tmp_path, name="tf1"):
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    return folder


def test_a_state_file_with_another_machines_absolute_path_finds_the_checkpoint_in_its_folder(tmp_path):
    folder = copy_checkpoint(tmp_path)
    (folder / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/run/model.ckpt-3"\n')
    assert TFCheckpoint(str(folder)).prefix == str(folder / "model.ckpt-3")


def one_line_error(path, tensor=None):
    with pytest.raises(CheckpointError) as info:
        checkpoint = TFCheckpoint(str(path))
        if tensor:
            checkpoint.read(tensor)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_flipped_byte_in_a_tensor_is_refused_naming_the_file_and_tensor(tmp_path):
    folder = copy_checkpoint(tmp_path)
    tensor = "bert/encoder/layer_2/attention/self/key/kernel"
    entry = TFCheckpoint(str(folder)).entries[tensor]
    data = folder / "model.ckpt-3.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[entry.offset + 5] ^= 0x10
    data.write_bytes(bytes(raw))
    message = one_line_error(folder, tensor)
    assert message.startswith(str(data)) and tensor in message and "CRC-32C" in message


def test_a_damaged_index_is_refused_naming_it(tmp_path):
    folder = copy_checkpoint(tmp_path)
    index = folder / "model.ckpt-3.index"
    raw = bytearray(index.read_bytes())
    raw[100] ^= 0x01
    index.write_bytes(bytes(raw))
    message = one_line_error(folder)
    assert message.startswith(str(index)) and "CRC-32C" in message


def test_a_truncated_data_file_is_refused_naming_it(tmp_path):
    folder = copy_checkpoint(tmp_path)
    data = folder / "model.ckpt-3.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    message = one_line_error(folder, "cls/predictions/output_bias")
    assert message.startswith(str(data)) and "truncated" in message


def test_a_missing_data_file_or_index_is_refused_naming_it(tmp_path):
    folder = copy_checkpoint(tmp_path)
    (folder / "model.ckpt-3.data-00000-of-00001").unlink()
    assert one_line_error(folder, "global_step").startswith(str(folder / "model.ckpt-3.data-00000-of-00001"))
    assert one_line_error(folder / "model.ckpt-4").startswith(str(folder / "model.ckpt-4.index"))
    (folder / "checkpoint").unlink()
    assert one_line_error(folder).startswith(f"{folder}: no 'checkpoint' file")
