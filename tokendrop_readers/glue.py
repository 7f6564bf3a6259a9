"""The nine GLUE tasks as distributed (Wang et al., ICLR 2019): one folder per task, tab-separated files.

The layouts are those the GLUE download script writes and fairseq's
``examples/roberta/preprocess_GLUE_tasks.sh`` and transformers' GLUE
processors read: ``train.tsv`` and ``dev.tsv`` (MNLI: ``dev_matched.tsv``),
a header line except in CoLA, fields split on tabs with no quoting at all
(``csv.QUOTE_NONE``: a review may start with ``"`` and hold no closing one),
UTF-8 (MRPC's header carries a byte-order mark, dropped here as
``utf-8-sig`` does in transformers).

=======  ======================================  ========  ======================  =================
task     fields (train / dev)                    header    sentence1, sentence2    label
=======  ======================================  ========  ======================  =================
CoLA     4: source, label, mark, sentence        no        4th                     2nd: 0, 1
SST-2    2: sentence, label                      yes       sentence                label: 0, 1
MRPC     5: Quality, #1 ID, #2 ID, #1/#2 String  yes       #1 String, #2 String    Quality: 0, 1
QQP      6: id, qid1, qid2, question1/2, label   yes       question1, question2    is_duplicate: 0, 1
STS-B    10, ending sentence1, sentence2, score  yes       sentence1, sentence2    score: 0-5 (regression)
MNLI     12 / 16 (label1-5 before gold_label)    yes       sentence1, sentence2    gold_label: 3 classes
QNLI     4: index, question, sentence, label     yes       question, sentence      entailment, not_entailment
RTE      4: index, sentence1, sentence2, label   yes       sentence1, sentence2    entailment, not_entailment
WNLI     4: index, sentence1, sentence2, label   yes       sentence1, sentence2    0, 1
=======  ======================================  ========  ======================  =================

A row that does not fit is refused in one line naming the file, the line and
what was expected, except in QQP, whose distributed train and dev files hold
a few rows with another number of fields: those are skipped and counted, as
fairseq's preprocessing script (``awk 'NF==6'``) and transformers'
``QqpProcessor`` do.
"""
import csv
import os
from dataclasses import dataclass
from typing import Dict, Iterator, NamedTuple, Optional, Tuple, Union

SPLITS = ("train", "dev")


class GlueError(ValueError):
    """A task name or file that does not fit GLUE's layouts; the message is one line."""


@dataclass(frozen=True)
class GlueTask:
    name: str
    fields: Tuple[int, int]  # tab-separated fields of a train row, of a dev row
    sentence1: int  # field positions (Python indices, negative from the end)
    sentence2: Optional[int]
    label: int
    labels: Optional[Tuple[str, ...]]  # None: a regression score in [0, 5]
    header: Optional[Tuple[str, Optional[str], str]]  # the header's names of the three fields, or no header
    dev_file: str = "dev.tsv"
    skip_malformed: bool = False

    @property
    def regression(self) -> bool:
        return self.labels is None

    def file_name(self, split: str) -> str:
        return self.dev_file if split == "dev" else "train.tsv"


BINARY = ("0", "1")
ENTAILMENT = ("entailment", "not_entailment")
STSB_RANGE = (0.0, 5.0)

TASKS: Dict[str, GlueTask] = {task.name: task for task in (
    GlueTask("CoLA", (4, 4), 3, None, 1, BINARY, None),
    GlueTask("SST-2", (2, 2), 0, None, 1, BINARY, ("sentence", None, "label")),
    GlueTask("MRPC", (5, 5), 3, 4, 0, BINARY, ("#1 String", "#2 String", "Quality")),
    GlueTask("QQP", (6, 6), 3, 4, 5, BINARY, ("question1", "question2", "is_duplicate"), skip_malformed=True),
    GlueTask("STS-B", (10, 10), 7, 8, 9, None, ("sentence1", "sentence2", "score")),
    GlueTask("MNLI", (12, 16), 8, 9, -1, ("contradiction", "entailment", "neutral"),
             ("sentence1", "sentence2", "gold_label"), dev_file="dev_matched.tsv"),
    GlueTask("QNLI", (4, 4), 1, 2, 3, ENTAILMENT, ("question", "sentence", "label")),
    GlueTask("RTE", (4, 4), 1, 2, 3, ENTAILMENT, ("sentence1", "sentence2", "label")),
    GlueTask("WNLI", (4, 4), 1, 2, 3, BINARY, ("sentence1", "sentence2", "label")),
)}


class Example(NamedTuple):
    sentence1: str
    sentence2: Optional[str]
    label: Union[str, float]  # one of the task's labels, or the STS-B score


def glue_task(name: Union[str, GlueTask]) -> GlueTask:
    """The task of a name as GLUE spells its folders (any case: ``sst-2``, ``STS-B``)."""
    if isinstance(name, GlueTask):
        return name
    by_lower = {key.lower(): task for key, task in TASKS.items()}
    task = by_lower.get(str(name).lower())
    if task is None:
        raise GlueError(f"unknown GLUE task {name!r}: expected one of {', '.join(TASKS)}")
    return task


def task_of_folder(folder: str) -> GlueTask:
    """The task a folder holds, told by its name as GLUE distributes it (``glue_data/RTE``)."""
    name = os.path.basename(os.path.normpath(folder))
    try:
        return glue_task(name)
    except GlueError:
        raise GlueError(f"{folder}: the folder's name {name!r} is no GLUE task: name the task "
                        f"(one of {', '.join(TASKS)})") from None


def split_path(folder: str, task: Union[str, GlueTask], split: str) -> str:
    """``folder``'s file of ``split`` (``train`` or ``dev``), which must exist."""
    task = glue_task(task)
    if split not in SPLITS:
        raise GlueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    path = os.path.join(folder, task.file_name(split))
    if not os.path.isfile(path):
        raise GlueError(f"{path}: no such file ({task.name}'s {split} split is {task.file_name(split)})")
    return path


def _describe(task: GlueTask) -> str:
    if task.header is None:
        return f"{task.name} has no header; sentence in field {task.sentence1 + 1}, label in field {task.label + 1}"
    return f"{task.name}'s header names {', '.join(n for n in task.header if n)}"


def _label(task: GlueTask, value: str, where: str):
    if task.regression:
        try:
            score = float(value)
        except ValueError:
            score = None
        if score is None or not STSB_RANGE[0] <= score <= STSB_RANGE[1]:
            raise GlueError(f"{where}: score {value!r} is not a number from {STSB_RANGE[0]:g} to "
                            f"{STSB_RANGE[1]:g} ({task.name})")
        return score
    if value not in task.labels:
        raise GlueError(f"{where}: label {value!r} is not one of {', '.join(task.labels)} ({task.name})")
    return value


def read_glue_file(path: str, task: Union[str, GlueTask], split: str,
                   skipped: Optional[list] = None) -> Iterator[Example]:
    """The examples of one file, as it streams; ``skipped`` collects the line numbers of QQP's
    malformed rows (the only rows not refused)."""
    task = glue_task(task)
    expected = task.fields[SPLITS.index(split)]
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        count = 0
        while True:
            try:
                fields = next(rows)
            except StopIteration:
                break
            except UnicodeDecodeError as err:
                raise GlueError(f"{path}: line {rows.line_num + 1}: not UTF-8 ({err.reason})") from None
            where = f"{path}: line {rows.line_num}"
            if task.header is not None and rows.line_num == 1:
                if len(fields) != expected or tuple(
                        fields[i] if i is not None else None
                        for i in (task.sentence1, task.sentence2, task.label)) != task.header:
                    found = f"{len(fields)} field(s) starting {fields[0][:40]!r}" if fields else "an empty line"
                    raise GlueError(f"{where}: expected {task.name}'s header of {expected} tab-separated fields "
                                    f"naming {', '.join(n for n in task.header if n)}; found {found}")
                continue
            if len(fields) != expected:
                if task.skip_malformed:
                    if skipped is not None:
                        skipped.append(rows.line_num)
                    continue
                raise GlueError(f"{where}: {len(fields)} tab-separated field(s), expected {expected} "
                                f"({_describe(task)}; fields are split on every tab, quotes are text)")
            second = fields[task.sentence2] if task.sentence2 is not None else None
            yield Example(fields[task.sentence1], second, _label(task, fields[task.label], where))
            count += 1
    if count == 0:
        raise GlueError(f"{path}: no examples ({_describe(task)})")


def read_split(folder: str, task: Union[str, GlueTask], split: str) -> Tuple[list, list]:
    """All examples of ``folder``'s ``split``, and the line numbers of skipped malformed QQP rows."""
    skipped: list = []
    examples = list(read_glue_file(split_path(folder, task, split), task, split, skipped))
    return examples, skipped
