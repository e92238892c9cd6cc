"""The content component: the content strategy's TF-IDF (title words, category, tags and
organizer of each event) as an item kNN, blended into the hybrid's score of the events without
training history.

The hybrid ranks an event nobody has touched from its feature tokens alone; the similarity of
its text to the user's own past events is a different signal (on MovieLens each wins on
different users). A candidate's content score is the square root of the summed cosines of the
user's past events among its `neighbours` most similar trained events (0: all of them, the
user's TF-IDF profile). For every candidate the model does not know (no training interaction:
published after training, or untouched), the score becomes (1 - w) z(hybrid) + w z(content);
known events keep z(hybrid). The neighbours and w are chosen on a cold validation split carved
from training (`content_fit`); the component is stored only where it wins there.

The vocabulary, its idf and the TF-IDF rows of every event of the training frame are stored in
the model blob, so a user needs only the ids of their past events; an event added after
training gets its row (and neighbour threshold) from its text with the stored vocabulary (new
words count as absent). docs/content_component.md has the figures.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from beacon.content import frame_terms, tfidf_rows
from beacon.idmap import IdMap
from beacon.model.coattendance import standardized
from beacon.model.trend import decayed_counts

#: blend weights tried on the cold validation split (0: the hybrid alone)
CONTENT_WEIGHTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 0.85)
#: a past event counts towards a candidate only when it is among the candidate's NEIGHBOURS
#: most similar trained events (item kNN), or, with 0, every past event counts (the user's
#: TF-IDF profile). Neither wins everywhere (MovieLens' cold items: 50 on all ratings' cold
#: validation split, every past event on ratings 4-5), so the fit chooses among these.
NEIGHBOUR_CHOICES = (50, 0)
NEIGHBOURS = NEIGHBOUR_CHOICES[0]
#: weights tried for the terms' recent popularity beside the user's profile (0: the profile
#: alone): a cold event scores z(profile) + b z(popularity), popularity being how many recent
#: registrations the trained events that share its terms drew (TF-IDF weighted)
POPULARITY_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
#: the registrations behind the terms' popularity are decayed with this half-life (days)
POPULARITY_HALF_LIFE_DAYS = 14.0
#: the neighbour threshold is read off a sample of at most this many trained events (k scaled
#: to the sample), so that it costs a small sparse product per new event, not one per catalog
THRESHOLD_SAMPLE = 4000


def component_terms(frame: pd.DataFrame) -> list[list[str]]:
    """The content strategy's terms of each event, each fact once: a title word the tags
    already carry (as a word of some tag) and a category that is also a tag are dropped, so a
    catalog that repeats its titles in its tags does not weigh those words twice."""
    out = []
    for terms in frame_terms(frame):
        tags = {t[4:] for t in terms if t.startswith("tag:")}
        tag_words = {word for tag in tags for word in tag.split()}
        out.append([t for t in terms
                    if not (t.startswith("title:") and t[6:] in tag_words)
                    and not (t.startswith("category:") and t[9:] in tags)])
    return out


def fit_vocabulary(docs: list[list[str]]) -> tuple[list[str], np.ndarray]:
    """(terms, idf) as scikit-learn's smooth idf computes it: ln((1 + n) / (1 + df)) + 1."""
    df: dict[str, int] = {}
    for doc in docs:
        for term in set(doc):
            df[term] = df.get(term, 0) + 1
    terms = sorted(df)
    counts = np.array([df[t] for t in terms], dtype=np.float64)
    idf = np.log((1.0 + len(docs)) / (1.0 + counts)) + 1.0
    return terms, idf.astype(np.float32)


@dataclass
class ContentPart:
    """A fitted component: the vocabulary, the TF-IDF rows of the training frame's events
    (`event_ids`, model ids), and the blend weight."""

    terms: list[str]
    idf: np.ndarray  # float32 [vocabulary]
    event_ids: np.ndarray  # int64 [events]
    matrix: Any  # csr float32 [events, vocabulary], unit rows
    weight: float
    #: stored rows of the trained events the neighbour thresholds are read off (a sample)
    pool: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: the trained events the pool samples (the k of the threshold scales with pool / this)
    trained: int = 0
    #: per stored event: the similarity of its `neighbours`-th most similar trained event
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    #: how many most similar trained events a past event must be among to count (0: all)
    neighbours: int = NEIGHBOURS
    #: per vocabulary term: the decayed registrations of the trained events, TF-IDF weighted
    #: (`term_popularity`); empty: none stored
    popularity: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    #: the weight b of z(popularity) beside z(profile) on cold events (0: the profile alone)
    popularity_weight: float = 0.0
    column: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = IdMap(np.asarray(self.event_ids, dtype=np.int64))
        self.column = {term: i for i, term in enumerate(self.terms)}

    @classmethod
    def build(cls, events: pd.DataFrame, weight: float, trained_rows: np.ndarray,
              seed: int = 0, neighbours: int = NEIGHBOURS) -> "ContentPart":
        """The component over a frame of events (id, title, category, tags, organizer);
        `trained_rows`: the frame rows of the events with training interactions (the
        neighbours a candidate is compared with)."""
        docs = component_terms(events)
        terms, idf = fit_vocabulary(docs)
        part = cls(terms, idf, events["id"].to_numpy(dtype=np.int64), None, float(weight))
        part.matrix = part.transform(docs)
        return part.with_trained(trained_rows, weight, seed, neighbours)

    def with_trained(self, trained_rows: np.ndarray, weight: float, seed: int = 0,
                     neighbours: int | None = None) -> "ContentPart":
        """The same vocabulary and rows, with neighbour thresholds against other trained
        events (`trained_rows`, rows of the stored events), another weight and (when given)
        another neighbour count."""
        trained_rows = np.asarray(trained_rows, dtype=np.int64)
        pool = trained_rows
        if len(pool) > THRESHOLD_SAMPLE:
            pool = np.sort(np.random.default_rng(seed).choice(pool, THRESHOLD_SAMPLE,
                                                              replace=False))
        part = ContentPart(self.terms, self.idf, self.event_ids, self.matrix, float(weight),
                           pool, int(len(trained_rows)),
                           neighbours=self.neighbours if neighbours is None else int(neighbours),
                           popularity=self.popularity, popularity_weight=self.popularity_weight)
        untrained = np.ones(len(self.event_ids), dtype=bool)
        untrained[trained_rows] = False
        part.thresholds = np.zeros(len(self.event_ids), dtype=np.float32)
        part.thresholds[untrained] = part.neighbour_thresholds(self.matrix[untrained])
        return part

    def neighbour_thresholds(self, rows: Any) -> np.ndarray:
        """Per TF-IDF row: the similarity of its `neighbours`-th most similar trained event
        (read off the pool; 0 when fewer share a term with it, and with neighbours 0)."""
        out = np.zeros(rows.shape[0], dtype=np.float32)
        if not self.neighbours or not len(self.pool) or not rows.shape[0]:
            return out
        k = max(1, int(round(self.neighbours * len(self.pool) / max(self.trained, 1))))
        pool_t = self.matrix[self.pool].T.tocsc()
        for start in range(0, rows.shape[0], 1024):
            sims = np.asarray((rows[start:start + 1024] @ pool_t).todense(), dtype=np.float32)
            if k < sims.shape[1]:
                out[start:start + len(sims)] = np.partition(sims, -k, axis=1)[:, -k]
        return out

    @property
    def width(self) -> int:
        return len(self.terms)

    def transform(self, docs: list[list[str]]) -> Any:
        """TF-IDF rows (csr float32) of term lists with this vocabulary."""
        return tfidf_rows(docs, self.column, self.idf, self.width).astype(np.float32)

    def rows(self, events: pd.DataFrame) -> "ContentRows":
        """TF-IDF rows and neighbour thresholds of a frame of events: stored for events of
        the training frame, computed from the text for the others."""
        import scipy.sparse as sp

        if not len(events):
            return ContentRows(sp.csr_matrix((0, self.width), dtype=np.float32),
                               np.zeros(0, dtype=np.float32))
        ids = events["id"].to_numpy(dtype=np.int64)
        stored = self.index.rows(ids)
        matrix = self.matrix[np.maximum(stored, 0)]
        thresholds = self.thresholds[np.maximum(stored, 0)].copy()
        new = np.flatnonzero(stored < 0)
        if len(new):
            fresh = self.transform(component_terms(events.iloc[new].reset_index(drop=True)))
            matrix = sp.vstack([matrix, fresh]).tocsr()
            order = np.arange(len(ids))
            order[new] = len(ids) + np.arange(len(new))
            matrix = matrix[order]
            thresholds[new] = self.neighbour_thresholds(fresh)
        rows = ContentRows(matrix, thresholds)
        if self.uses_popularity:
            rows.popular = rows.popularity(self.popularity)
        return rows

    def history_rows(self, history: Iterable[Any]) -> np.ndarray:
        """Stored rows of the history event ids this component knows (sorted, unique)."""
        ids = np.asarray(list(history), dtype=np.int64)
        rows = self.index.rows(ids) if len(ids) else np.zeros(0, dtype=np.int64)
        return np.unique(rows[rows >= 0])

    def scores(self, histories: Sequence[Any], candidates: "ContentRows"
               ) -> tuple[np.ndarray, np.ndarray]:
        """(content score [users, candidates], has_history [users]): per candidate, the square
        root of the summed similarities of the user's past events among its neighbours."""
        out = np.zeros((len(histories), len(candidates)), dtype=np.float64)
        has_history = np.zeros(len(histories), dtype=bool)
        if not len(candidates):
            return out, has_history
        for i, history in enumerate(histories):
            rows = self.history_rows(history)
            if not len(rows):
                continue
            has_history[i] = True
            sims = (candidates.matrix @ self.matrix[rows].T).tocsr()  # [candidates, history]
            row_of = np.repeat(np.arange(sims.shape[0]), np.diff(sims.indptr))
            kept = np.where(sims.data >= candidates.thresholds[row_of], sims.data, 0.0)
            out[i] = np.sqrt(np.bincount(row_of, kept, minlength=sims.shape[0]))
        return out, has_history

    def parts(self, hybrid: np.ndarray, histories: Sequence[Any], candidates: "ContentRows",
              cold: np.ndarray, rows: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray] | None:
        """(hybrid part, content part) of the blended [users, candidates] scores (their sum is
        the blend), or None when no candidate is cold or no user has a history it knows.
        Column c of `hybrid` is row `rows[c]` of `candidates` (default: row c); `cold` is per
        column."""
        if self.weight <= 0 or not cold.any():
            return None
        cold_cols = np.flatnonzero(cold)
        picked = cold_cols if rows is None else np.asarray(rows)[cold_cols]
        picked_rows = candidates[picked]
        on_cold, has_history = self.scores(histories, picked_rows)
        on_cold = self.lifted(on_cold, picked_rows)
        if not has_history.any():
            return None
        content = np.zeros(hybrid.shape, dtype=np.float64)
        content[:, cold_cols] = on_cold
        return blend_parts(hybrid, content, cold, has_history, self.weight)

    def lifted(self, content: np.ndarray, candidates: "ContentRows") -> np.ndarray:
        """[users, candidates] content scores with the terms' recent popularity added
        (`with_popularity`); unchanged where none is stored or its weight is 0."""
        if not self.uses_popularity:
            return content
        return with_popularity(content, self._popular(candidates), self.popularity_weight)

    @property
    def uses_popularity(self) -> bool:
        return self.popularity_weight > 0 and len(self.popularity) == self.width

    def _popular(self, candidates: "ContentRows") -> np.ndarray:
        return candidates.popular if candidates.popular is not None \
            else candidates.popularity(self.popularity)

    def strongest_sources(self, history: Iterable[Any], candidate_rows: Any
                          ) -> list[int | None]:
        """Per candidate (TF-IDF rows, csr): the id of the history event most similar to it;
        None where none shares a term with it. One sparse product for a page of candidates."""
        rows = self.history_rows(history)
        if not len(rows):
            return [None] * candidate_rows.shape[0]
        cosine = np.asarray((candidate_rows @ self.matrix[rows].T).todense())
        best = np.argmax(cosine, axis=1)
        return [int(self.event_ids[rows[b]]) if cosine[i, b] > 0 else None
                for i, b in enumerate(best)]

    def popularity_led(self, history: Iterable[Any], candidates: "ContentRows") -> np.ndarray:
        """[candidates] bool: where the terms' recent popularity adds more than the user's
        past events to the content score `lifted` gives (all False without a popularity in
        use); `candidates`: the cold ones the blend standardizes over."""
        led = np.zeros(len(candidates), dtype=bool)
        if not self.uses_popularity or not len(candidates):
            return led
        profile, _ = self.scores([history], candidates)
        every = np.ones(profile.shape, dtype=bool)
        popularity = self._popular(candidates)[None, :]
        return (self.popularity_weight * standardized(popularity, every)
                > standardized(profile, every))[0]

    def popular_term(self, candidate_terms: np.ndarray) -> str | None:
        """The value of the candidate's term (its row's column indices) that carries most
        recent popularity; None without a popularity in use or with none on its terms."""
        if not self.uses_popularity or not len(candidate_terms):
            return None
        best = candidate_terms[int(np.argmax(self.popularity[candidate_terms]))]
        return self.terms[best].partition(":")[2] if self.popularity[best] > 0 else None

    def shared_terms(self, event_id: int, candidate_terms: np.ndarray, top: int = 2
                     ) -> list[str]:
        """The values of the terms a stored event shares with a candidate (its row's column
        indices), the rarest first."""
        row = self.index.row(int(event_id))
        if row < 0:
            return []
        pointers = self.matrix.indptr
        own = self.matrix.indices[pointers[row]:pointers[row + 1]]
        shared = np.intersect1d(own, candidate_terms)
        shared = shared[np.argsort(-self.idf[shared], kind="stable")][:top]
        return [self.terms[c].partition(":")[2] for c in shared]


@dataclass
class ContentRows:
    """The content component's view of a frame of events: TF-IDF rows and thresholds."""

    matrix: Any  # csr float32 [events, vocabulary]
    thresholds: np.ndarray  # float32 [events]
    #: [events] the events' popularity under the component's terms' popularity, computed once
    #: with the rows (None: the component has none in use)
    popular: np.ndarray | None = None

    def __getitem__(self, cols: Any) -> "ContentRows":
        return ContentRows(self.matrix[cols], self.thresholds[cols],
                           None if self.popular is None else self.popular[cols])

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def popularity(self, term_popularity: np.ndarray) -> np.ndarray:
        """[events] each event's popularity: log1p(its TF-IDF row . the terms' popularity).
        The log keeps a few events with many popular terms from standing far above the rest
        (without it, MovieLens' warm lists at ratings 3-5 and 4-5 lost 4-8% to cold items)."""
        return np.log1p(np.asarray(self.matrix @ term_popularity, dtype=np.float64).ravel())

    def term_columns(self, i: int) -> np.ndarray:
        """The vocabulary columns of event i's terms."""
        return self.matrix.indices[self.matrix.indptr[i]:self.matrix.indptr[i + 1]]


def blend_parts(hybrid: np.ndarray, content: np.ndarray, cold: np.ndarray,
                has_profile: np.ndarray, weight: float,
                finite: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((1 - w_j) z(hybrid), w_j z(content)) with w_j = w on the cold candidates of users with
    a history, 0 elsewhere; z(hybrid) standardized over each row's (`finite`) candidates,
    z(content) over its cold ones."""
    finite = np.isfinite(hybrid) if finite is None else finite
    z_hybrid = standardized(np.where(finite, hybrid, 0.0), finite)
    blended = finite & cold[None, :] & has_profile[:, None]
    z_content = standardized(content, blended)
    w = weight * blended
    return (1.0 - w) * z_hybrid, w * z_content


def term_popularity(matrix: Any, erows: np.ndarray, times: np.ndarray, at: int) -> np.ndarray:
    """[vocabulary] float32: per term, the registrations (event row, unix time) before `at`
    decayed over POPULARITY_HALF_LIFE_DAYS, each event's count spread over its TF-IDF row
    (`matrix`, csr [events, vocabulary]: the events the rows index)."""
    counts = decayed_counts(np.asarray(erows, dtype=np.int64), np.asarray(times, dtype=np.int64),
                            at, POPULARITY_HALF_LIFE_DAYS, matrix.shape[0])
    return np.asarray(matrix.T @ counts, dtype=np.float32).ravel()


def with_popularity(content: np.ndarray, popularity: np.ndarray, weight: float) -> np.ndarray:
    """z(content) + weight z(popularity), each standardized over a row's candidates
    (`popularity`: [candidates], the same for every user)."""
    every = np.ones(content.shape, dtype=bool)
    return standardized(content, every) + weight * standardized(
        np.broadcast_to(popularity, content.shape), every)
