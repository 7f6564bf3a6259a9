"""Token-dropping RoBERTa/BERT pretraining as a fairseq plugin: ``--user-dir fairseq_tokendrop``."""
import logging

# fairseq's text_to_speech task, imported with every task, logs "Please install tensorboardX" at INFO on
# import; every command here would print it before its own output
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)

from . import criterions, models, tasks  # noqa: E402,F401  (registers everything)
from .method.importance import get_token_importance, set_token_importance
from .checkpoints.safe_loading import allow_fairseq_checkpoint_globals, install_one_line_errors

allow_fairseq_checkpoint_globals()
install_one_line_errors()

__all__ = ["get_token_importance", "set_token_importance"]
__version__ = "0.1.0"
