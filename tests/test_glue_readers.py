"""tokendrop_readers.glue on files written in each GLUE task's exact layout, and its one-line refusals.

The layouts below are written out here from GLUE as distributed (the download script's files, as
fairseq's preprocess_GLUE_tasks.sh cuts them: its column numbers are in the comments), not read
from the module's table: header lines verbatim, MRPC's byte-order mark, MNLI's 12 train and 16
dev fields, CoLA without a header.
"""
import pytest

from tokendrop_readers.glue import TASKS, GlueError, glue_task, read_glue_file, read_split, task_of_folder

# A text with GLUE's quoting quirks: quotes are text (QUOTE_NONE), an unclosed one included.
QUOTED = '"Unclosed quote, and a "pair" inside'


def layout(task, split):
    """(header or None, rows builder): rows(s1, s2, label) -> the fields of one line."""
    if task == "CoLA":  # fairseq: input column 4, label column 2
        return None, lambda a, b, y: ["gj04", y, "" if y == "1" else "*", a]
    if task == "SST-2":  # input 1, label 2
        return ["sentence", "label"], lambda a, b, y: [a, y]
    if task == "MRPC":  # inputs 4 5, label 1
        return (["\ufeffQuality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                lambda a, b, y: [y, "702876", "702977", a, b])
    if task == "QQP":  # inputs 4 5, label 6
        return (["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                lambda a, b, y: ["133273", "213221", "213222", a, b, y])
    if task == "STS-B":  # inputs 8 9, label 10
        return (["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
                 "score"], lambda a, b, y: ["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none", a, b, y])
    if task == "MNLI":  # inputs 9 10, label 12 (train) / 16 (dev)
        head = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]
        if split == "train":
            return head + ["label1", "gold_label"], lambda a, b, y: ["0", "31193", "31193n", "government", "( x )",
                                                                     "( y )", "(ROOT x)", "(ROOT y)", a, b, y, y]
        return (head + ["label1", "label2", "label3", "label4", "label5", "gold_label"],
                lambda a, b, y: ["0", "63735", "63735n", "slate", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a, b,
                                 "neutral", y, y, "neutral", y, y])
    if task == "QNLI":  # inputs 2 3, label 4
        return ["index", "question", "sentence", "label"], lambda a, b, y: ["0", a, b, y]
    return ["index", "sentence1", "sentence2", "label"], lambda a, b, y: ["0", a, b, y]  # RTE, WNLI


LABELS = {"CoLA": ["1", "0"], "SST-2": ["0", "1"], "MRPC": ["1", "0"], "QQP": ["0", "1"], "STS-B": ["5.000", "0.25"],
          "MNLI": ["neutral", "contradiction", "entailment"], "QNLI": ["not_entailment", "entailment"],
          "RTE": ["entailment", "not_entailment"], "WNLI": ["1", "0"]}
PAIR = {"CoLA": False, "SST-2": False}


def write_task(folder, task, split, rows, file_name=None):
    header, fields = layout(task, split)
    lines = ([header] if header else []) + [fields(a, b, y) for a, b, y in rows]
    name = file_name or ("dev_matched.tsv" if task == "MNLI" and split == "dev" else f"{split}.tsv")
    (folder / name).write_text("".join("\t".join(f) + "\n" for f in lines), encoding="utf-8")
    return folder / name


def rows_of(task):
    pair = PAIR.get(task, True)
    return [(f"first {i} {QUOTED if i == 1 else ''}", f"second {i}" if pair else None, label)
            for i, label in enumerate(LABELS[task])]


@pytest.mark.parametrize("task", list(LABELS))
def test_each_task_reads_as_distributed(task, tmp_path):
    folder = tmp_path / task
    folder.mkdir()
    for split in ("train", "dev"):
        write_task(folder, task, split, rows_of(task))
    assert task_of_folder(str(folder)).name == task
    for split in ("train", "dev"):
        examples, skipped = read_split(str(folder), task_of_folder(str(folder)), split)
        expected = [(a, b, float(y) if task == "STS-B" else y) for a, b, y in rows_of(task)]
        assert [tuple(e) for e in examples] == expected and skipped == []


def test_task_names_follow_glue_folders_in_any_case():
    assert [glue_task(n).name for n in ("sst-2", "STS-B", "mnli", "cola")] == ["SST-2", "STS-B", "MNLI", "CoLA"]
    assert set(TASKS) == set(LABELS)


def refusal(call):
    with pytest.raises(GlueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_an_unknown_task_is_refused_naming_the_known_ones(tmp_path):
    message = refusal(lambda: glue_task("SST2"))
    assert "'SST2'" in message and "SST-2" in message and "WNLI" in message
    assert "glue_data/rte-ish" in refusal(lambda: task_of_folder("glue_data/rte-ish"))


def test_a_row_with_another_number_of_fields_is_refused_with_its_line(tmp_path):
    path = write_task(tmp_path, "RTE", "train", rows_of("RTE"))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("7\tpremise with a\ttab\thypothesis\tentailment\n")  # a tab inside a text
    message = refusal(lambda: list(read_glue_file(str(path), "RTE", "train")))
    assert message.startswith(f"{path}: line 4: 5 tab-separated field(s), expected 4")


def test_a_label_outside_the_set_and_a_score_outside_0_5_are_refused(tmp_path):
    path = write_task(tmp_path, "QNLI", "train", [("q", "s", "entailment"), ("q", "s", "contradiction")])
    message = refusal(lambda: list(read_glue_file(str(path), "QNLI", "train")))
    assert message.startswith(f"{path}: line 3: label 'contradiction' is not one of entailment, not_entailment")
    path = write_task(tmp_path, "STS-B", "dev", [("a", "b", "3.2"), ("a", "b", "5.5")])
    assert f"{path}: line 3: score '5.5'" in refusal(lambda: list(read_glue_file(str(path), "STS-B", "dev")))


def test_a_file_of_another_layout_is_refused_on_its_first_line(tmp_path):
    headerless = tmp_path / "train.tsv"
    headerless.write_text("a fine film\t1\n")  # SST-2 rows without SST-2's header
    message = refusal(lambda: list(read_glue_file(str(headerless), "SST-2", "train")))
    assert message.startswith(f"{headerless}: line 1: expected SST-2's header of 2 tab-separated fields naming "
                              "sentence, label")
    mnli_train_as_dev = write_task(tmp_path, "MNLI", "train", rows_of("MNLI"), file_name="dev_matched.tsv")
    assert "line 1: expected MNLI's header of 16" in refusal(
        lambda: list(read_glue_file(str(mnli_train_as_dev), "MNLI", "dev")))


def test_a_missing_split_names_the_file_glue_calls_it(tmp_path):
    write_task(tmp_path, "MNLI", "train", rows_of("MNLI"))
    write_task(tmp_path, "MNLI", "train", rows_of("MNLI"), file_name="dev.tsv")
    message = refusal(lambda: read_split(str(tmp_path), "MNLI", "dev"))
    assert "dev_matched.tsv: no such file" in message


def test_qqp_rows_without_six_fields_are_skipped_and_counted(tmp_path):
    path = write_task(tmp_path, "QQP", "train", rows_of("QQP"))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("363362\t...\tbroken row\n")
    write_task(tmp_path, "QQP", "dev", rows_of("QQP"))
    examples, skipped = read_split(str(tmp_path), "QQP", "train")
    assert len(examples) == 2 and skipped == [4]
