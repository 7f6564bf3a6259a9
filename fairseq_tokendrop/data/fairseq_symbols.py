"""The symbols a fairseq ``masked_lm`` dictionary holds besides ``dict.txt``'s entries.

``fairseq.data.Dictionary()`` starts with ``<s> <pad> </s> <unk>`` (ids 0-3),
``Dictionary.load`` adds ``dict.txt``'s entries after them, and
``MaskedLMTask.__init__`` appends ``<mask>``, so it is the last id.
"""
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0-3
MASK_SYMBOL = "<mask>"  # the last id
