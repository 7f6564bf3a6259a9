#!/usr/bin/env bash
# Fine-tune one pretrained checkpoint on GLUE tasks as distributed, with stock fairseq, and print each task's
# dev metric: fairseq-tokendrop-finetune-glue once per task folder (docs/finetune.md), one recipe for all.
#
#   GLUE_DIR=glue_data CHECKPOINT=export/model.pt OUT=ft bash examples/finetune_glue_fairseq.sh [TASK ...]
#
# GLUE_DIR       the folder GLUE's download script writes: CoLA/ SST-2/ MRPC/ QQP/ STS-B/ MNLI/ QNLI/ RTE/ WNLI/,
#                each with train.tsv and dev.tsv (MNLI: dev_matched.tsv) as distributed
# TASK ...       the tasks (default: the eight fairseq's README.glue.md reports; WNLI left out as there)
# CHECKPOINT     an export's model.pt (export_checkpoint --fairseq-out) or a raw checkpoint of the plugin
# OUT            OUT/TASK/ gets metrics.json, dev_predictions.txt, train.log and checkpoints/; OUT/glue.tsv the
#                table printed at the end
# FINETUNE_ARGS  flags of the command for every task: the recipe (--lr, --batch-size, --epochs, --seed, ...),
#                --tokenizer-dir (a WordPiece model's export: its data dir or --hf-out export, where vocab.txt is)
# FAIRSEQ_ARGS   flags appended to fairseq-train, e.g. "--fp16" (README.glue.md trains in fp16 on a GPU)
set -euo pipefail
GLUE_DIR=${GLUE_DIR:?set GLUE_DIR to the folder holding the GLUE task folders}
CHECKPOINT=${CHECKPOINT:?set CHECKPOINT to the pretrained model.pt or checkpoint}
OUT=${OUT:?set OUT}
read -r -a finetune_args <<< "${FINETUNE_ARGS:-}"
read -r -a fairseq_args <<< "${FAIRSEQ_ARGS:-}"
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(MNLI QNLI QQP RTE SST-2 MRPC CoLA STS-B)
python="${PYTHON:-python}"

mkdir -p "$OUT"
for task in "${tasks[@]}"; do
    echo "finetune_glue_fairseq: $task" >&2
    "$python" -m fairseq_tokendrop.commands.finetune_glue "$GLUE_DIR/$task" --task "$task" \
        --checkpoint "$CHECKPOINT" --out "$OUT/$task" "${finetune_args[@]}" -- "${fairseq_args[@]}" > /dev/null
done

# One line a task: its metrics and score (the mean of two where GLUE reports two), from OUT/TASK/metrics.json.
"$python" - "$OUT" "${tasks[@]}" <<'PY' | tee "$OUT/glue.tsv"
import json, os, sys
out, tasks = sys.argv[1], sys.argv[2:]
print("task\tscore\tmetrics\tdev examples")
for task in tasks:
    with open(os.path.join(out, task, "metrics.json")) as handle:
        result = json.load(handle)
    metrics = " ".join(f"{name} {value:.4f}" for name, value in result["metrics"].items())
    print(f"{task}\t{result['score']:.4f}\t{metrics}\t{result['dev_examples']}")
PY
