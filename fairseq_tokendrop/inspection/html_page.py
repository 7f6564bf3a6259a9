"""The page of ``fairseq-tokendrop-inspect``: one self-contained HTML file, no script, no library.

The marks are a table with one row per sentence (random-LTD: one per sentence and wrapped layer,
``data-sentence`` and ``data-layer`` telling which), each token a ``span`` of class ``kept`` or
``dropped``; then each checkpoint's most and least important ids, the score of every ranked id
against its corpus frequency as an inline SVG scatter, and the series table.
"""
import html
import math
from typing import List, Sequence

import numpy as np

from ..atomic_file import atomic_path
from ..training.kept_by_kind import FREQUENT, SPECIAL
from .report import Report

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { padding: 0.2em 0.6em; vertical-align: top; text-align: left; }
tr.sentence td.tokens { font-family: monospace; line-height: 1.8; }
tr.first td, tr.first th { border-top: 1px solid #ccc; }
span.kept { background: #dbe9f6; padding: 0 0.15em; }
span.dropped { color: #999; text-decoration: line-through; padding: 0 0.15em; }
td.label { color: #666; white-space: nowrap; }
.ranking { display: inline-block; vertical-align: top; margin-right: 3em; }
"""
MAX_POINTS = 4000  # scatter points drawn at most: a 50k vocabulary would make a page of megabytes
KIND_COLOURS = {SPECIAL: "#d62728", FREQUENT: "#ff7f0e"}
OTHER_COLOUR = "#1f77b4"


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _marks_table(report: Report) -> List[str]:
    view = report.shown
    rows = ["<table class=\"marks\">", "<tr><th>#</th><th>layers</th><th>tokens (dropped: struck through)</th></tr>"]
    for s, marks in enumerate(view.marks):
        for r, (label, kept) in enumerate(zip(view.labels, marks.kept)):
            tokens = " ".join(f"<span class=\"{'kept' if k else 'dropped'}\">{_e(report.symbols[i])}</span>"
                              for i, k in zip(marks.ids, kept))
            head = f"<th rowspan=\"{len(view.labels)}\">{s}</th>" if r == 0 else ""
            rows.append(f"<tr class=\"sentence{' first' if r == 0 else ''}\" data-sentence=\"{s}\" "
                        f"data-layer=\"{_e(label)}\">{head}<td class=\"label\">{_e(label)}</td>"
                        f"<td class=\"tokens\">{tokens}</td></tr>")
    rows.append("</table>")
    return rows


def _ids_table(title: str, ids: Sequence[int], report: Report, scores: np.ndarray) -> str:
    body = "".join(f"<tr><td>{_e(report.symbols[i])}</td><td>{scores[i]:.3f}</td>"
                   + (f"<td>{report.frequency[i]:.0f}</td>" if report.frequency is not None else "") + "</tr>"
                   for i in ids)
    count = "<th>corpus count</th>" if report.frequency is not None else ""
    return (f"<div class=\"ranking\"><h3>{_e(title)}</h3><table><tr><th>token</th><th>score</th>{count}</tr>"
            f"{body}</table></div>")


def scatter_svg(x: np.ndarray, y: np.ndarray, colours: Sequence[str], x_label: str, y_label: str,
                width: int = 640, height: int = 400) -> str:
    """An SVG scatter plot with linear axes over the data's range."""
    left, right, top, bottom = 60, 20, 20, 50
    x0, x1 = float(x.min()), float(x.max())
    y0, y1 = float(y.min()), float(y.max())
    x1, y1 = (x1 if x1 > x0 else x0 + 1.0), (y1 if y1 > y0 else y0 + 1.0)

    def px(v):
        return left + (v - x0) / (x1 - x0) * (width - left - right)

    def py(v):
        return height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom)

    parts = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" "
             f"viewBox=\"0 0 {width} {height}\" font-size=\"11\">",
             f"<rect x=\"{left}\" y=\"{top}\" width=\"{width - left - right}\" height=\"{height - top - bottom}\" "
             "fill=\"none\" stroke=\"#999\"/>"]
    for v in np.linspace(x0, x1, 5):
        parts.append(f"<text x=\"{px(v):.1f}\" y=\"{height - bottom + 15}\" text-anchor=\"middle\">{v:.3g}</text>")
    for v in np.linspace(y0, y1, 5):
        parts.append(f"<text x=\"{left - 5}\" y=\"{py(v) + 4:.1f}\" text-anchor=\"end\">{v:.3g}</text>")
    parts.append(f"<text x=\"{(left + width - right) / 2}\" y=\"{height - 10}\" text-anchor=\"middle\">"
                 f"{_e(x_label)}</text>")
    parts.append(f"<text transform=\"translate(14 {(top + height - bottom) / 2}) rotate(-90)\" "
                 f"text-anchor=\"middle\">{_e(y_label)}</text>")
    parts += [f"<circle cx=\"{px(a):.1f}\" cy=\"{py(b):.1f}\" r=\"2\" fill=\"{c}\" fill-opacity=\"0.6\"/>"
              for a, b, c in zip(x, y, colours)]
    parts.append("</svg>")
    return "".join(parts)


def frequency_points(report: Report, ranking) -> np.ndarray:
    """The ranked ids the corpus holds, at most ``MAX_POINTS`` of them spread evenly over frequency."""
    ids = np.flatnonzero(ranking.ranked & (report.frequency > 0))
    ids = ids[np.argsort(report.frequency[ids], kind="stable")]
    if len(ids) > MAX_POINTS:
        ids = ids[np.linspace(0, len(ids) - 1, MAX_POINTS).round().astype(int)]
    return ids


def _ranking_section(report: Report) -> List[str]:
    parts = ["<h2>Importance ranking</h2>"]
    for view in report.views:
        parts.append(f"<h3>{_e(view.path)} (update {view.num_updates})</h3>")
        if view.ranking is None:
            parts.append("<p>no importance scores in this checkpoint</p>")
            continue
        ranking = view.ranking
        most, least = ranking.ends(report.top)
        parts.append(f"<p>{int(ranking.ranked.sum())} ranked ids (pinned ids left out"
                     + (f"; {ranking.at_init} still at the initial score left out" if ranking.at_init else "")
                     + ")</p>")
        parts.append(_ids_table("most important", most, report, ranking.scores)
                     + _ids_table("least important", least, report, ranking.scores))
        if view is not report.plotted:
            continue
        rho = ranking.frequency_correlation(report.frequency)
        ids = frequency_points(report, ranking)
        parts.append(f"<p>Spearman rank correlation of score and corpus frequency: <b>{rho:.3f}</b> "
                     "(-1: importance is inverse frequency). Orange: the most frequent tenth of the vocabulary; "
                     f"red: special tokens; {len(ids)} ids drawn.</p>")
        if len(ids):
            colours = [KIND_COLOURS.get(int(report.kinds[i]), OTHER_COLOUR) for i in ids]
            parts.append(scatter_svg(np.log10(report.frequency[ids]), ranking.scores[ids], colours,
                                     "log10 corpus count (dict.txt)", "importance score"))
    return parts


def _series_section(report: Report) -> List[str]:
    steps = report.series()
    if not steps:
        return []
    rows = "".join(f"<tr><td>{_e(s.before)}</td><td>{_e(s.after)}</td><td>{_fmt(s.rank_correlation)}</td>"
                   f"<td>{_fmt(s.switched)}</td></tr>" for s in steps)
    return ["<h2>Between checkpoints</h2>", "<table><tr><th>from</th><th>to</th><th>Spearman of the scores</th>"
            f"<th>share of the sentences' tokens switched between kept and dropped</th></tr>{rows}</table>"]


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def page(report: Report) -> str:
    view = report.shown
    parts = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">",
             f"<title>What {_e(view.path)} drops</title><style>{STYLE}</style></head><body>",
             f"<h1>What {_e(view.path)} drops</h1>",
             f"<p>update {view.num_updates}; {_e(view.mode)}</p>", "<h2>Sentences</h2>"]
    parts += _marks_table(report) + _ranking_section(report) + _series_section(report)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_page(report: Report, path: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(page(report))
