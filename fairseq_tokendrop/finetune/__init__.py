"""Fine-tuning on GLUE folders with stock fairseq: binarize for ``sentence_prediction``, the stock
RoBERTa flags of a pretrained checkpoint, dev predictions of the result (``commands/finetune_glue.py``)."""
