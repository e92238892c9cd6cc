"""The content-based strategy: TF-IDF over each event's title, category, tags and organizer; a
user profile from the events they interacted with (weighted by interaction type, rejects
counting against) plus their interest tags; cosine similarity between the profile and each
candidate. It needs no trained model, so it serves events nobody has touched yet.

Terms carry their field ("tag:jazz", "category:music", "organizer:blue note", "title:quartet"),
so a reason can say which field matched and where the profile got it from. scikit-learn is
imported here only (about 1 s), and this module only when the strategy runs.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from beacon.config import DEFAULT_TYPE_WEIGHTS
from beacon.features import norm

#: an interest tag weighs as much as one registration
INTEREST_WEIGHT = 1.0
_WORD = re.compile(r"[^\W\d_]{3,}")
_VERBS = {
    "register": "registered for", "attend": "attended", "favorite": "saved",
    "share": "shared", "click": "opened", "view": "viewed",
}


def event_terms(title: Any, category: Any, tags: Iterable[Any] | None, organizer: Any) -> list[str]:
    """The terms of one event, each prefixed with its field."""
    terms: list[str] = []
    if isinstance(category, str) and norm(category):
        terms.append("category:" + norm(category))
    for tag in tags if tags is not None else ():
        if norm(tag):
            terms.append("tag:" + norm(tag))
    if isinstance(organizer, str) and norm(organizer):
        terms.append("organizer:" + norm(organizer))
    if isinstance(title, str):
        terms.extend("title:" + word for word in _WORD.findall(title.lower()))
    return terms


def interest_terms(tags: Iterable[str]) -> list[str]:
    """What an interest tag can match: a tag, a category, a title word of the same name."""
    terms: list[str] = []
    for tag in tags:
        value = norm(tag)
        if not value:
            continue
        terms += ["tag:" + value, "category:" + value]
        if _WORD.fullmatch(value):
            terms.append("title:" + value)
    return terms


def frame_terms(frame: pd.DataFrame) -> list[list[str]]:
    """event_terms of every row of an events frame (title optional)."""
    titles = frame["title"] if "title" in frame.columns else [None] * len(frame)
    return [event_terms(t, c, g if isinstance(g, (list, tuple, np.ndarray)) else (), o)
            for t, c, g, o in zip(titles, frame["category"], frame["tags"], frame["organizer"])]


def _terms_of(doc: list[str]) -> list[str]:
    return doc


def type_weight(kind: str) -> float:
    return float(DEFAULT_TYPE_WEIGHTS.get(kind, 0.0))


@dataclass
class HistoryItem:
    """One past event of a user with its text and their interactions with it."""

    event_pk: int
    title: str
    terms: list[str]
    weight: float  # sum of the type weights of their interactions with it
    kind: str  # the strongest positive interaction type ("" when none)


def history_items(rows: Sequence[Mapping[str, Any]]) -> list[HistoryItem]:
    """Group a user's interactions (event_pk, type, title, category, organizer, tags) by event."""
    items: dict[int, HistoryItem] = {}
    for row in rows:
        pk = int(row["event_pk"])
        item = items.get(pk)
        if item is None:
            terms = event_terms(row.get("title"), row.get("category"), row.get("tags"),
                                row.get("organizer"))
            item = items[pk] = HistoryItem(pk, str(row.get("title") or ""), terms, 0.0, "")
        weight = type_weight(str(row["type"]))
        item.weight += weight
        if weight > 0 and weight > type_weight(item.kind):
            item.kind = str(row["type"])
    return [item for item in items.values() if item.weight != 0]


@dataclass
class Profile:
    vector: np.ndarray  # [vocabulary] float64, unit length
    interest: np.ndarray  # [vocabulary] bool: the term came from an interest tag
    interest_labels: dict[str, str]  # term -> the user's own spelling of the tag
    history: list[HistoryItem]
    history_matrix: Any  # csr [len(history), vocabulary]


class ContentIndex:
    """TF-IDF of a set of candidate events (fit once per candidate snapshot)."""

    def __init__(self, docs: list[list[str]]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(analyzer=_terms_of, sublinear_tf=True, norm="l2")
        if any(docs):
            self.matrix = self.vectorizer.fit_transform(docs).tocsr()
            self.terms = np.asarray(self.vectorizer.get_feature_names_out(), dtype=object)
        else:  # no event has any text: every similarity is 0
            from scipy import sparse

            self.matrix = sparse.csr_matrix((len(docs), 0))
            self.terms = np.zeros(0, dtype=object)
        self.width = len(self.terms)

    def transform(self, docs: list[list[str]]):
        from scipy import sparse

        if not self.width or not docs:
            return sparse.csr_matrix((len(docs), self.width))
        return self.vectorizer.transform(docs).tocsr()

    def profile(self, history: list[HistoryItem], interests: Sequence[str]) -> Profile | None:
        """The user's profile, or None when nothing of it is in the vocabulary."""
        if not self.width:
            return None
        matrix = self.transform([item.terms for item in history])
        weights = np.array([item.weight for item in history], dtype=np.float64)
        vector = np.asarray(matrix.T @ weights).ravel() if len(history) else np.zeros(self.width)
        interest_row = self.transform([interest_terms(interests)])
        vector = vector + INTEREST_WEIGHT * interest_row.toarray().ravel()
        length = float(np.linalg.norm(vector))
        if length == 0.0:
            return None
        labels: dict[str, str] = {}
        for tag in interests:
            for term in interest_terms([tag]):
                labels.setdefault(term, str(tag).strip())
        return Profile(vector / length, interest_row.toarray().ravel() > 0, labels, history,
                       matrix)

    def similarity(self, profile: Profile, rows: np.ndarray) -> np.ndarray:
        """Cosine of the profile with the candidates at `rows` (both sides unit length)."""
        if len(rows) * 2 < self.matrix.shape[0]:
            return np.asarray(self.matrix[rows] @ profile.vector, dtype=np.float64).ravel()
        return np.asarray(self.matrix @ profile.vector, dtype=np.float64).ravel()[rows]

    def reasons(self, profile: Profile, i: int, top: int = 2) -> list[str]:
        """Phrases for the terms that contributed most to candidate i's similarity."""
        row = self.matrix.getrow(i)
        contributions = row.data * profile.vector[row.indices]
        phrases: list[str] = []
        for k in np.argsort(-contributions, kind="stable"):
            if contributions[k] <= 0 or len(phrases) == top:
                break
            phrase = self._phrase(profile, int(row.indices[k]))
            if phrase and phrase not in phrases:
                phrases.append(phrase)
        return phrases

    def _phrase(self, profile: Profile, column: int) -> str | None:
        term = str(self.terms[column])
        field, _, value = term.partition(":")
        if profile.interest[column]:
            return f"matches your interest: {profile.interest_labels.get(term, value)}"
        if not profile.history:
            return None
        column_values = profile.history_matrix.getcol(column).toarray().ravel()
        pull = column_values * np.array([item.weight for item in profile.history])
        best = int(np.argmax(pull))
        if pull[best] <= 0:
            return None
        item = profile.history[best]
        return f"like {item.title or 'an event'} you {_VERBS.get(item.kind, 'chose')}"
