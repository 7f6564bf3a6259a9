from . import masked_lm_tokendrop  # noqa: F401  (registers the criterion)
