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
#: how much the popularity prior (in [0, 1)) may add to a cosine: it only orders equal matches
PRIOR_WEIGHT = 1e-3
#: the scale of the place factor (km)
PLACE_KM = 25.0
_WORD = re.compile(r"[^\W\d_]{3,}")
#: title words that say nothing about an event's subject (the words of 3+ letters among
#: English function words): "the" alone is in 30% of MovieLens' titles and made every "The
#: ..." title look alike (content NDCG@10 on its cold items 0.127 -> 0.144 without them)
TITLE_STOP_WORDS = frozenset("""
about above after again against all also and any are because been before being below
between both but can could did does doing down during each few for from further had has
have having her here hers herself him himself his how into its itself just more most myself
nor not now off once only other our ours ourselves out over own same she should some such
than that the their theirs them themselves then there these they this those through too
under until very was were what when where which while who whom why will with would you
your yours yourself yourselves
""".split())
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
        terms.extend("title:" + word for word in _WORD.findall(title.lower())
                     if word not in TITLE_STOP_WORDS)
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


def place_factor(distances_km: np.ndarray | None) -> np.ndarray | float:
    """What a match is worth at a distance from the user's home or point: 1 / (1 + ln(1 +
    km / 25)): 0.75 at 10 km, 0.38 at 100 km, 0.14 at 9,000 km (1 without a place to measure
    from). An event platform's users go to what is near; text alone would send a London
    gardener to a hike in Sao Paulo."""
    if distances_km is None:
        return 1.0
    return 1.0 / (1.0 + np.log1p(np.asarray(distances_km, dtype=np.float64) / PLACE_KM))


def _terms_of(doc: list[str]) -> list[str]:
    return doc


def type_weight(kind: str) -> float:
    return float(DEFAULT_TYPE_WEIGHTS.get(kind, 0.0))


def tfidf_rows(docs: list[list[str]], column: Mapping[str, int], idf: np.ndarray, width: int):
    """Sublinear TF-IDF rows of `docs` (csr [docs, width], unit length; a doc with no known
    term is a zero row) for a vocabulary (`column`: term -> column) and its idf."""
    from scipy import sparse

    indptr, indices, counts = [0], [], []
    for doc in docs:
        seen: dict[int, int] = {}
        for term in doc:
            col = column.get(term)
            if col is not None:
                seen[col] = seen.get(col, 0) + 1
        indices.extend(seen)
        counts.extend(seen.values())
        indptr.append(len(indices))
    index_array = np.asarray(indices, dtype=np.int64)
    values = (1.0 + np.log(np.asarray(counts, dtype=np.float64))) * \
        np.asarray(idf, dtype=np.float64)[index_array]
    pointers = np.asarray(indptr, dtype=np.int64)
    row_of = np.repeat(np.arange(len(docs)), np.diff(pointers))
    values /= np.sqrt(np.bincount(row_of, values * values, minlength=len(docs)))[row_of]
    return sparse.csr_matrix((values, index_array, pointers), shape=(len(docs), width))


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
    _strongest: dict[int, int] | None = None

    def strongest_item(self, column: int) -> HistoryItem | None:
        """The history event that pulls the profile most towards a term (None: none does)."""
        if self._strongest is None:
            pull = self.history_matrix.multiply(
                np.array([item.weight for item in self.history])[:, None]).tocoo()
            best: dict[int, tuple[float, int]] = {}
            for row, col, value in zip(pull.row.tolist(), pull.col.tolist(), pull.data.tolist()):
                if value > 0 and value > best.get(col, (0.0, -1))[0]:
                    best[col] = (value, row)
            self._strongest = {col: row for col, (_, row) in best.items()}
        row = self._strongest.get(column)
        return None if row is None else self.history[row]


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
        self.column = dict(getattr(self.vectorizer, "vocabulary_", {}))
        self.idf = np.asarray(getattr(self.vectorizer, "idf_", np.zeros(0)), dtype=np.float64)

    def transform(self, docs: list[list[str]]):
        """The fitted TF-IDF rows of `docs` (terms outside the vocabulary dropped): what the
        vectorizer's transform gives, without its per-call overhead (a request has a few docs)."""
        return tfidf_rows(docs, self.column, self.idf, self.width)

    def profile(self, history: list[HistoryItem], interests: Sequence[str]) -> Profile | None:
        """The user's profile, or None when nothing of it is in the vocabulary."""
        if not self.width:
            return None
        both = self.transform([item.terms for item in history] + [interest_terms(interests)])
        matrix, interest_row = both[:-1], both[-1]
        weights = np.array([item.weight for item in history], dtype=np.float64)
        vector = np.asarray(matrix.T @ weights).ravel() if len(history) else np.zeros(self.width)
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
        lo, hi = self.matrix.indptr[i], self.matrix.indptr[i + 1]
        columns = self.matrix.indices[lo:hi]
        contributions = self.matrix.data[lo:hi] * profile.vector[columns]
        phrases: list[str] = []
        for k in np.argsort(-contributions, kind="stable"):
            if contributions[k] <= 0 or len(phrases) == top:
                break
            phrase = self._phrase(profile, int(columns[k]))
            if phrase and phrase not in phrases:
                phrases.append(phrase)
        return phrases

    def _phrase(self, profile: Profile, column: int) -> str | None:
        term = str(self.terms[column])
        field, _, value = term.partition(":")
        if profile.interest[column]:
            return f"matches your interest: {profile.interest_labels.get(term, value)}"
        item = profile.strongest_item(column) if profile.history else None
        if item is None:
            return None
        return f"like {item.title or 'an event'} you {_VERBS.get(item.kind, 'chose')}"


def holdout_scorer(events: pd.DataFrame, candidates: pd.DataFrame, users: pd.DataFrame,
                   history: pd.DataFrame, popularity: np.ndarray,
                   prior_weight: float = PRIOR_WEIGHT):
    """The content strategy for an offline evaluation, as serving scores it: profiles of
    `users` (rows: id, tags, latitude, longitude) from `history` (user_id, event_id, type: what
    happened before the cutoff) and their interests, against the TF-IDF of `candidates`, times
    the place factor from each user's home; `popularity` (per candidate, >= 0) orders equal
    matches. Returns scores(user_rows, candidate_cols)."""
    from scipy import sparse
    from sklearn.preprocessing import normalize

    index = ContentIndex(frame_terms(candidates))
    row_of = pd.Series(np.arange(len(users)), index=users["id"].to_numpy())
    history = history[history["user_id"].isin(row_of.index)]
    weights = history["type"].astype(str).map(DEFAULT_TYPE_WEIGHTS).fillna(0.0).to_numpy(float)
    touched = np.unique(history["event_id"].to_numpy())
    col_of = pd.Series(np.arange(len(touched)), index=touched)
    by_user = sparse.csr_matrix(  # duplicates add up, as history_items sums them per event
        (weights, (row_of[history["user_id"]].to_numpy(), col_of[history["event_id"]].to_numpy())),
        shape=(len(users), len(touched)))
    texts = index.transform(frame_terms(events.set_index("id").loc[touched].reset_index()))
    interests = index.transform([interest_terms(t if isinstance(t, (list, tuple, np.ndarray))
                                                else ()) for t in users["tags"]])
    candidates_by_term = index.matrix.T.tocsc()  # [vocabulary, candidates]
    value = 1.0 + np.log1p(np.asarray(popularity, dtype=np.float64))
    prior = prior_weight * value / (1.0 + value)
    places = _home_factors(users, candidates)

    def scores(block: np.ndarray, cols: np.ndarray) -> np.ndarray:
        # one block of users at a time: profiles and cosines of all users at once can be
        # nearly dense (users x vocabulary, users x candidates)
        profiles = normalize(by_user[block] @ texts + INTEREST_WEIGHT * interests[block])
        cosine = np.asarray((profiles @ candidates_by_term[:, cols]).todense())
        return cosine * places(block, cols) + prior[cols][None, :]

    return scores


def _home_factors(users: pd.DataFrame, candidates: pd.DataFrame):
    """place_factor of each candidate from each user's home, per block of users."""
    from beacon.filters import UNKNOWN_PLACE_KM, haversine_km

    lat = np.radians(pd.to_numeric(candidates["latitude"], errors="coerce").to_numpy(float))
    lon = np.radians(pd.to_numeric(candidates["longitude"], errors="coerce").to_numpy(float))
    cos_lat = np.cos(lat)
    homes = users[["latitude", "longitude"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)

    def factors(block: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = np.ones((len(block), len(cols)))
        for k, (home_lat, home_lon) in enumerate(homes[block]):
            if not (np.isnan(home_lat) or np.isnan(home_lon)):
                km = haversine_km(lat[cols], lon[cols], cos_lat[cols], home_lat, home_lon)
                out[k] = place_factor(np.nan_to_num(km, nan=UNKNOWN_PLACE_KM))
        return out

    return factors
