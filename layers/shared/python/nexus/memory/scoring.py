"""How relevant an earlier turn is to a new request: one number in 0..1 from four factors, each in
0..1 (the seed's formula, with its default weights):

    0.4 * text relevance + 0.3 * working-directory match + 0.2 * file overlap + 0.1 * recency

- text relevance: PostgreSQL's ``ts_rank_cd(document, query, 1|32)`` (cover density over the
  earlier turn's question, weighted A, and answer, weighted B; divided by 1 + log(document length);
  mapped into 0..1 by rank / (rank + 1)), times the share of the request's words the turn contains.
  The query is every word of the request's text (English stemming, stop words dropped), any of
  which may match; the share keeps a long turn that repeats one of them from beating a short one
  that has them all;
- working directory: 1 for the same directory, 0.5 when one is inside the other, else 0;
- file overlap: Jaccard of the files the earlier turn's tools named and the files the current
  conversation named so far;
- recency: exp(-hours / 24).

Two refinements, both to keep the number honest:

- A factor the request gives nothing to compare with (it names no working directory; its
  conversation has named no file yet) is left out and the other weights are scaled to sum to 1, so
  a plain chat client is not marked down for lacking a working directory.
- An earlier turn is *related* only if it shares a file with the request or its text relevance is at
  least a tenth of a perfect match (``RELATED_TEXT``): the same directory and a recent time say where
  and when, not what, and one common word in a long question is not a subject. Unrelated turns are
  never recalled, whatever their score.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

RECENCY_SCALE_H = 24.0
RELATED_TEXT = 0.1
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Weights:
    text: float = 0.4
    cwd: float = 0.3
    files: float = 0.2
    recency: float = 0.1

    def applicable(self, has_cwd: bool, has_files: bool) -> Weights:
        """The weights for one request, over the factors it can be measured on, summing to 1."""
        w = (self.text, self.cwd if has_cwd else 0.0, self.files if has_files else 0.0, self.recency)
        total = sum(w)
        if total <= 0:
            return Weights(0.0, 0.0, 0.0, 0.0)
        return Weights(*(x / total for x in w))


@dataclass(frozen=True, slots=True)
class Factors:
    text: float
    cwd: float
    files: float
    recency: float

    @property
    def related(self) -> bool:
        """About what the request is about (a precondition for being recalled)."""
        return self.text >= RELATED_TEXT or self.files > 0


def score(f: Factors, w: Weights) -> float:
    return w.text * f.text + w.cwd * f.cwd + w.files * f.files + w.recency * f.recency


# The factors (text relevance is PostgreSQL's, in the store).


def recency(hours: float) -> float:
    return math.exp(-max(hours, 0.0) / RECENCY_SCALE_H)


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    sa, sb = set(a), set(b)
    union = sa | sb
    return len(sa & sb) / len(union) if union else 0.0


def directory(path: str | None) -> str | None:
    """A working directory as compared: normalised, no trailing separator; None for nothing."""
    if path is None:
        return None
    path = path.strip().replace("\\", "/")
    if not path:
        return None
    return posixpath.normpath(path)


def cwd_match(a: str | None, b: str | None) -> float:
    return same_directory(directory(a), directory(b))


def same_directory(a: str | None, b: str | None) -> float:
    """``cwd_match`` of two directories already normalised by ``directory``."""
    if a is None or b is None:
        return 0.0
    if a == b:
        return 1.0
    inside = a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")
    return 0.5 if inside else 0.0


def select(
    candidates: Sequence[tuple[T, Factors]], w: Weights, min_score: float, limit: int
) -> list[tuple[T, float]]:
    """The related candidates scoring at least ``min_score``, best first (ties: the order given),
    at most ``limit``."""
    scored = [(item, score(f, w)) for item, f in candidates if f.related]
    kept = [(item, s) for item, s in scored if s >= min_score]
    kept.sort(key=lambda pair: pair[1], reverse=True)
    return kept[:limit]
