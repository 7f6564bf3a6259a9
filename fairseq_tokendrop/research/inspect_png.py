"""``fairseq-tokendrop-inspect --png``: the page's picture as one PNG (matplotlib, Agg backend).

Top: the first sentences, one line of tokens per row of marks, kept tokens on a blue ground and
dropped ones in grey. Bottom, where the checkpoint has scores and dict.txt has counts: the score of
every ranked id against its corpus frequency, the most frequent tenth in orange and the specials in red.
"""
import numpy as np

from ..inspection.html_page import KIND_COLOURS, OTHER_COLOUR, frequency_points
from ..inspection.report import Report
from .png_figure import pyplot, save_png

SENTENCES = 4  # the picture's sentences: the page and the terminal show them all
FONT_PT = 8
CHAR_PT = 0.6 * FONT_PT  # the advance of one monospace character: the x axis counts characters
LABEL_CHARS, CHARS_PER_LINE = 18, 150
WIDTH_IN = (LABEL_CHARS + CHARS_PER_LINE) * CHAR_PT / 72 / 0.9  # the text axes take about 0.9 of the width
DPI = 120


def _token_lines(report: Report):
    """(label, [(symbol, kept)]) lines, wrapped at ``CHARS_PER_LINE`` characters."""
    shown = report.shown
    lines = []
    for s, marks in enumerate(shown.marks[:SENTENCES]):
        for label, kept in zip(shown.labels, marks.kept):
            line, used = [], 0
            for i, k in zip(marks.ids, kept):
                symbol = report.symbols[i]
                if line and used + len(symbol) + 1 > CHARS_PER_LINE:
                    lines.append((f"#{s} {label}", line))
                    line, used = [], 0
                line.append((symbol, bool(k)))
                used += len(symbol) + 1
            lines.append((f"#{s} {label}", line))
    return lines


def figure(report: Report):
    """The picture: the sentences' marks, and below them the score-frequency scatter where there is one."""
    plt = pyplot()
    shown = report.shown
    lines = _token_lines(report)
    plotted = report.plotted
    text_height = 0.24 * (len(lines) + 2)
    fig = plt.figure(figsize=(WIDTH_IN, text_height + (4.5 if plotted else 0)))
    grid = fig.add_gridspec(2 if plotted else 1, 1, height_ratios=[text_height, 4.5] if plotted else [1])
    ax = fig.add_subplot(grid[0])
    ax.set_axis_off()
    ax.set_xlim(0, LABEL_CHARS + CHARS_PER_LINE)
    ax.set_ylim(len(lines) + 1, -1)
    ax.set_title(f"{shown.path}, update {shown.num_updates}: {shown.mode}\nkept tokens on blue, dropped in grey",
                 fontsize=9, loc="left")
    for row, (label, tokens) in enumerate(lines):
        ax.text(0, row, label, fontsize=FONT_PT, family="monospace", color="#666", va="center")
        x = LABEL_CHARS
        for symbol, kept in tokens:
            style = dict(bbox=dict(boxstyle="square,pad=0.1", fc="#dbe9f6", ec="none")) if kept else dict(color="#aaa")
            ax.text(x, row, symbol, fontsize=FONT_PT, family="monospace", va="center", **style)
            x += len(symbol) + 1
    if plotted:
        ax = fig.add_subplot(grid[1])
        ids = frequency_points(report, plotted.ranking)
        colours = [KIND_COLOURS.get(int(report.kinds[i]), OTHER_COLOUR) for i in ids]
        ax.scatter(np.log10(report.frequency[ids]), plotted.ranking.scores[ids], s=6, c=colours, alpha=0.6)
        ax.set_xlabel("log10 corpus count (dict.txt)")
        ax.set_ylabel("importance score")
        rho = plotted.ranking.frequency_correlation(report.frequency)
        ax.set_title(f"{plotted.path}, update {plotted.num_updates}: score against frequency, Spearman {rho:.3f} "
                     "(-1: importance is inverse frequency)\norange: the most frequent tenth of the vocabulary, "
                     "red: special tokens", fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def write_png(report: Report, path: str) -> None:
    save_png(figure(report), path, DPI)
