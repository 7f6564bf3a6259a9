"""The terminal view of kept and dropped tokens: plain text that needs no colour.

Each sentence is its tokens on one line and, under it, one line per row of marks (the middle
layers of the token-dropping layout, or each wrapped layer of random-LTD) with ``^`` under every
token that row drops, wrapped to the terminal's width. With colour (a terminal, or ``--color
always``) each row is instead the tokens themselves, the dropped ones dim and struck through.
"""
import unicodedata
from typing import List, Sequence

import numpy as np

DROPPED = "^"
DIM_STRUCK, RESET = "\x1b[2;9m", "\x1b[0m"


def display_width(text: str) -> int:
    """Terminal columns: wide East Asian characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def _chunks(widths: Sequence[int], room: int) -> List[range]:
    """Runs of tokens that fit ``room`` columns with one space between them (a token wider than
    ``room`` gets a line of its own)."""
    chunks, start, used = [], 0, -1
    for i, w in enumerate(widths):
        if i > start and used + 1 + w > room:
            chunks.append(range(start, i))
            start, used = i, -1
        used += 1 + w
    if start < len(widths):
        chunks.append(range(start, len(widths)))
    return chunks


def sentence_lines(symbols: Sequence[str], kept: np.ndarray, labels: Sequence[str], width: int,
                   colour: bool) -> List[str]:
    """The lines of one sentence: ``symbols`` its tokens, ``kept`` ``[rows, T]`` bool, ``labels`` one per row."""
    label_width = max(display_width(label) for label in labels) + 2
    widths = [display_width(s) for s in symbols]
    lines = []
    for chunk in _chunks(widths, max(width - label_width, 1)):
        if colour:
            for label, row in zip(labels, kept):
                lines.append(_pad(label, label_width) + " ".join(
                    symbols[i] if row[i] else f"{DIM_STRUCK}{symbols[i]}{RESET}" for i in chunk))
            continue
        lines.append(" " * label_width + " ".join(symbols[i] for i in chunk))
        for label, row in zip(labels, kept):
            marks = " ".join((" " if row[i] else DROPPED) * widths[i] for i in chunk)
            lines.append((_pad(label, label_width) + marks).rstrip())
    return lines
