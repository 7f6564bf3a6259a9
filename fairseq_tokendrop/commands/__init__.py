"""The commands users run on their data: each module has a ``main(argv=None)``; setup.py installs them as ``fairseq-tokendrop-*``."""
