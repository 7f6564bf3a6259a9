"""The plugin's errors that reach a user as one line, in a leaf module every other one may import."""

ERROR_PREFIX = "fairseq_tokendrop: error: "


class FlagError(SystemExit):
    """A bad flag value or input file: exits with one line naming the flag or file, no traceback.

    A SystemExit, as argparse's own errors are, so fairseq-train prints the
    message alone; library callers can catch it by this name.
    """

    def __init__(self, message: str):
        super().__init__(ERROR_PREFIX + message)


class CheckpointMismatch(FlagError):
    """A checkpoint that loads but does not fit the model built for it (e.g. another dictionary).

    A FlagError, so it passes through ``Trainer.load_checkpoint``, which turns
    every ``Exception`` into "Cannot load model parameters", and ends
    fairseq-train with this one line, after fairseq's own line naming the file.
    """
