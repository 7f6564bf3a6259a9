from . import tokendrop_roberta  # noqa: F401  (registers the model)
