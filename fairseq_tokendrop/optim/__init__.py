"""Optimizers and learning-rate schedules: LAMB without apex (--optimizer lamb) and MLPerf BERT's
schedule (--lr-scheduler mlperf_polynomial). Importing this package registers both with fairseq."""
from . import mlperf_lr  # noqa: F401  (registers --lr-scheduler mlperf_polynomial)
from .fairseq_lamb import FairseqLamb, register_lamb
from .lamb import Lamb

register_lamb()

__all__ = ["FairseqLamb", "Lamb", "register_lamb"]
