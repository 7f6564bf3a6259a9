"""research/checkpoint_check_cost.py measures what it says: saves with and without torch's CRC-32s, the
plugin's atomic writer, and the check, on a state shaped as fairseq-train's."""
import os
import zipfile

from fairseq_tokendrop.checkpoints.verification import unmatched_records
from fairseq_tokendrop.research.checkpoint_check_cost import measure, training_state


def test_the_saves_it_times_differ_only_in_the_crc_and_the_check_reads_a_whole_file(tmp_path):
    state = training_state("tiny")
    assert state["last_optimizer_state"]["state"] and state["model"]._metadata["encoder.token_importance"]
    result = measure(state, str(tmp_path), repeats=1)
    with zipfile.ZipFile(tmp_path / "checkpoint.pt") as with_crc, zipfile.ZipFile(tmp_path / "crc_off.pt") as without:
        assert with_crc.testzip() is None and all(r.CRC for r in with_crc.infolist())
        assert all(r.CRC == 0 for r in without.infolist())  # the timed save without CRC-32s computed none
        assert [r.file_size for r in with_crc.infolist()] == [r.file_size for r in without.infolist()]
    assert result["file_bytes"] == os.path.getsize(tmp_path / "checkpoint.pt")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt", "crc_off.pt"]  # the atomic writer left nothing else
    # a file with no CRC-32s has no digest to check: passed as unverified (docs/guarantees.md, "Not covered")
    assert unmatched_records(str(tmp_path / "crc_off.pt")) == (None, [])
    assert all(result[k]["wall_s"] > 0 for k in ("save_crc_off", "save_crc_on", "save_atomic", "load", "check"))
