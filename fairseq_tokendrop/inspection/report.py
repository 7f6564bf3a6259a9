"""What ``fairseq-tokendrop-inspect`` found, as its outputs read it: the kept and dropped marks of the
last checkpoint, each checkpoint's importance ranking, and how both move between checkpoints."""
import json
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..atomic_file import atomic_path
from .marks import SentenceMarks
from .ranking import Ranking, ranking_correlation, switch_share


@dataclass
class CheckpointView:
    path: str
    num_updates: int
    mode: str  # the dropping flags, in words
    labels: List[str]  # what each row of marks stands for
    marks: List[SentenceMarks]
    ranking: Optional[Ranking]  # None: the checkpoint holds no scores


@dataclass
class SeriesStep:
    before: str
    after: str
    rank_correlation: float  # Spearman of the scores both rank; NaN without scores
    switched: float  # share of the sentences' marks that changed between kept and dropped


@dataclass
class Report:
    symbols: List[str]  # the dictionary, by id
    frequency: Optional[np.ndarray]  # [V] corpus count of each id (dict.txt), None when unknown
    kinds: Optional[np.ndarray]  # [V] kept_by_kind kinds by that frequency
    views: List[CheckpointView]  # in the order given; the last one's marks are shown
    top: int  # how many of the most and least important ids to list

    @property
    def shown(self) -> CheckpointView:
        return self.views[-1]

    @property
    def plotted(self) -> Optional[CheckpointView]:
        """The latest checkpoint with scores, whose score-frequency plot is drawn (None: none, or no frequencies)."""
        with_scores = [view for view in self.views if view.ranking is not None]
        return with_scores[-1] if with_scores and self.frequency is not None else None

    def series(self) -> List[SeriesStep]:
        steps = []
        for before, after in zip(self.views, self.views[1:]):
            rho = (ranking_correlation(before.ranking, after.ranking)
                   if before.ranking is not None and after.ranking is not None else float("nan"))
            steps.append(SeriesStep(before.path, after.path, rho,
                                    switch_share([m.kept for m in before.marks], [m.kept for m in after.marks])))
        return steps


def _number(value: float):
    return None if np.isnan(value) else float(value)


def report_json(report: Report) -> dict:
    shown = report.shown
    out = {
        "checkpoint": shown.path, "num_updates": shown.num_updates, "mode": shown.mode, "rows": shown.labels,
        "sentences": [{"ids": m.ids, "tokens": [report.symbols[i] for i in m.ids], "kept_length": m.kept_length,
                       "kept": m.kept.astype(int).tolist()} for m in shown.marks],
        "rankings": [],
        "series": [{"before": s.before, "after": s.after, "rank_correlation": _number(s.rank_correlation),
                    "switched": _number(s.switched)} for s in report.series()],
    }
    for view in report.views:
        entry = {"checkpoint": view.path, "num_updates": view.num_updates, "scores": view.ranking is not None}
        if view.ranking is not None:
            most, least = view.ranking.ends(report.top)
            entry.update(most=[report.symbols[i] for i in most], least=[report.symbols[i] for i in least],
                         ranked_ids=int(view.ranking.ranked.sum()), at_init=view.ranking.at_init)
            if report.frequency is not None:
                entry["frequency_correlation"] = _number(view.ranking.frequency_correlation(report.frequency))
        out["rankings"].append(entry)
    return out


def write_json(report: Report, path: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(report_json(report), handle, indent=1, ensure_ascii=False)
