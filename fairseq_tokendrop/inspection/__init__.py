"""What a checkpoint drops, for ``fairseq-tokendrop-inspect`` (``commands/inspect_dropping.py``): the
encoder's own plan per sentence, the importance ranking, and the terminal, HTML and JSON views."""
