"""Readers of the files other tools write, with numpy alone: no fairseq, no torch.

Kept apart from the ``fairseq_tokendrop`` plugin, whose import registers with
fairseq, so that data tools and worker processes read shards without it.
"""
