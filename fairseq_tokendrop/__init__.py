"""Token-dropping RoBERTa/BERT pretraining as a fairseq plugin: ``--user-dir fairseq_tokendrop``.

Importing the package registers the model, task, criterion, LAMB optimizer and MLPerf
learning-rate schedule with fairseq and
allowlists the plain-data classes fairseq checkpoints carry for torch's safe
unpickler (``checkpoints/safe_loading.py``); it changes nothing else.
"""
import logging

# fairseq's text_to_speech task logs "Please install tensorboardX" at INFO when fairseq.tasks is
# imported, which the registration below does: every plugin command would print it before its own
# output. Only that one logger, only that level.
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)

from . import criterions, models, optim, tasks  # noqa: E402,F401  (registers everything)
from .checkpoints.safe_loading import allow_fairseq_checkpoint_globals  # noqa: E402
from .method.importance import apply_token_importance, get_token_importance, set_token_importance  # noqa: E402

allow_fairseq_checkpoint_globals()

__all__ = ["apply_token_importance", "get_token_importance", "set_token_importance"]
__version__ = "0.1.0"
