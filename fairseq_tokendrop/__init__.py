"""Token-dropping RoBERTa/BERT pretraining as a fairseq plugin: ``--user-dir fairseq_tokendrop``."""
from . import criterions, models, tasks  # noqa: F401  (registers everything)
from .method.importance import get_token_importance, set_token_importance
from .checkpoints.safe_loading import allow_fairseq_checkpoint_globals, install_one_line_errors

allow_fairseq_checkpoint_globals()
install_one_line_errors()

__all__ = ["get_token_importance", "set_token_importance"]
__version__ = "0.1.0"
