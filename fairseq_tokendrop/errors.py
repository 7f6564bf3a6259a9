"""The plugin's one error: bad input reported in one line, in a leaf module every other one may import."""

ERROR_PREFIX = "fairseq_tokendrop: error: "


class TokendropError(SystemExit):
    """A bad flag value, input file or record: ends a command, or fairseq-train, with one line naming it.

    A SystemExit, as argparse's own errors are: Python prints the message alone,
    with no traceback, and exits 1, and the error passes through fairseq's
    ``Trainer.load_checkpoint``, which turns every ``Exception`` into "Cannot
    load model parameters", so a checkpoint that does not fit ends fairseq-train
    with this line, after fairseq's own line naming the file. Library callers
    catch it by this name; ``message`` is the text without the prefix, for a
    caller that adds context. Not for multiprocessing workers: a pool passes on
    only ``Exception``s (the readers raise ``ValueError`` there).
    """

    def __init__(self, message: str):
        self.message = message
        super().__init__(ERROR_PREFIX + message)
