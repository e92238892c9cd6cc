"""HybridModel: the fitted (or loaded) model and its numpy serving path."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from beacon.config import ModelConfig
from beacon.errors import ModelNotFitted
from beacon.features import (
    PLACE_TOKEN,
    Places,
    UserContext,
    Vocabulary,
    event_token_rows,
    event_tokens,
    user_token_rows,
    user_tokens,
)
from beacon.idmap import IdMap
from beacon.model.coattendance import CoAttendance
from beacon.model.content_part import ContentPart
from beacon.model.trend import TrendPart
from beacon.model.fitting import fit_model
from beacon.model.fold_in import FoldIn
from beacon.model.network import _bag_sum
from beacon.model.place import PlaceTerm
from beacon.model.records import EpochReport, EventMatrix
from beacon.model.serialization import model_from_bytes, model_to_bytes


class HybridModel(PlaceTerm, FoldIn):
    """A fitted (or loaded) hybrid model. Build one with `fit` or `from_bytes`."""

    def __init__(self, *, config: ModelConfig | None = None, user_map: IdMap | None = None,
                 event_map: IdMap | None = None, user_vocab: Vocabulary | None = None,
                 event_vocab: Vocabulary | None = None,
                 weights: Mapping[str, np.ndarray] | None = None,
                 counts: Mapping[str, int] | None = None,
                 loss_history: list[dict[str, Any]] | None = None,
                 device: str = "cpu", validation: Mapping[str, Any] | None = None,
                 contrast_cities: list[str | None] | None = None):
        self.config = config or ModelConfig()
        self.user_map = user_map or IdMap(np.empty(0, dtype=np.int64))
        self.event_map = event_map or IdMap(np.empty(0, dtype=np.int64))
        self.user_vocab = user_vocab or Vocabulary([])
        self.event_vocab = event_vocab or Vocabulary([])
        self.weights: dict[str, np.ndarray] = dict(weights or {})
        self.counts: dict[str, int] = dict(counts or {})
        self.loss_history: list[dict[str, Any]] = list(loss_history or [])
        self.device = device
        self.validation: dict[str, Any] = dict(validation or {})
        self.contrast_cities: list[str | None] = list(contrast_cities or [])
        #: the co-attendance component (None: not chosen on validation, or an older blob)
        self.coattendance: CoAttendance | None = None
        #: the content component for events without history (None: not chosen, older blob)
        self.content: ContentPart | None = None
        #: the trend component (None: not chosen on the time split, or an older blob)
        self.trend: TrendPart | None = None
        self._event_tok_padded: np.ndarray | None = None
        self._contrast_place: Places | None = None


    @classmethod
    def fit(cls, data: Any, config: ModelConfig | None = None,
            callback: Callable[[EpochReport], None] | None = None) -> "HybridModel":
        """Train on a TrainingData. Raises BeaconError when there is nothing to train on."""
        return fit_model(cls, data, config, callback)

    # ---------------------------------------------------------------- serving

    @property
    def fitted(self) -> bool:
        return "event_tok" in self.weights

    def _require(self) -> None:
        if not self.fitted:
            raise ModelNotFitted("the model has not been fitted or loaded yet")

    @property
    def dim(self) -> int:
        self._require()
        return int(self.weights["event_tok"].shape[1])

    def knows_user(self, user_id: int | None) -> bool:
        return user_id is not None and self.user_map.row(user_id) >= 0

    def knows_event(self, event_id: int | None) -> bool:
        return event_id is not None and self.event_map.row(event_id) >= 0

    def user_vector(self, user: UserContext) -> tuple[np.ndarray, float]:
        """A known user: id + feature tokens; anyone else: feature tokens only."""
        self._require()
        vec = self.feature_user_vector(user)
        row = self.user_map.row(user.user_id) if user.user_id is not None else -1
        if row >= 0:
            vec = vec + self.weights["user_id"][row]
        return vec.astype(np.float32), 0.0

    def user_matrix(self, users: pd.DataFrame) -> np.ndarray:
        """Vectors for a frame of users (id, tags, latitude, longitude, city) at once: id
        embedding for users seen in training plus their feature tokens."""
        self._require()
        users = users.reset_index(drop=True)
        d = self.dim
        if len(users) == 0:
            return np.zeros((0, d), dtype=np.float32)
        pad = len(self.user_vocab)
        tok = user_token_rows(users, self.user_vocab, pad=pad)
        table = np.vstack([self.weights["user_tok"], np.zeros((1, d), np.float32)])
        vectors, _ = _bag_sum(tok, table, np.zeros(len(table), np.float32))
        rows = self.user_map.rows(users["id"].to_numpy(dtype=np.int64))
        known = rows >= 0
        if known.any():
            vectors[known] += self.weights["user_id"][rows[known]]
        return vectors.astype(np.float32)

    def feature_user_vector(self, user: UserContext) -> np.ndarray:
        """The user's vector from interest tags, city and home area alone."""
        self._require()
        idx = self.user_vocab.lookup(user_tokens(user))
        table = self.weights["user_tok"]
        if len(idx) == 0:
            return np.zeros(table.shape[1], dtype=np.float32)
        return table[idx].sum(axis=0).astype(np.float32)

    def _padded_event_tok(self) -> tuple[np.ndarray, np.ndarray]:
        if self._event_tok_padded is None:
            d = self.weights["event_tok"].shape[1]
            vec = np.vstack([self.weights["event_tok"], np.zeros((1, d), np.float32)])
            bias = np.append(self.weights["event_tok_bias"], np.float32(0))
            self._event_tok_padded = (vec, bias)
        return self._event_tok_padded

    def event_matrix(self, events: pd.DataFrame) -> EventMatrix:
        """Vectors for a frame of events (id, category, tags, organizer, city, latitude,
        longitude, price, start_time, timezone); events unseen in training use features only."""
        self._require()
        events = events.reset_index(drop=True)
        n = len(events)
        ids = events["id"].to_numpy(dtype=np.int64) if n else np.empty(0, dtype=np.int64)
        d = self.dim
        if n == 0:
            return EventMatrix(np.zeros((0, d), np.float32), np.zeros(0, np.float32), ids,
                               np.zeros(0, dtype=bool), Places.of(events))
        pad = len(self.event_vocab)
        tok = event_token_rows(events, self.event_vocab, pad=pad)
        tok_vec, tok_bias = self._padded_event_tok()
        vectors, bias = _bag_sum(tok, tok_vec, tok_bias)
        rows = self.event_map.rows(ids)
        known = rows >= 0
        if known.any():
            vectors[known] += self.weights["event_id"][rows[known]]
            bias[known] += self.weights["event_id_bias"][rows[known]]
        place = Places.of(events)
        content = self.content.rows(events) if self.content is not None else None
        trend = self.trend.values(ids) if self.trend is not None else None
        # the same id array on both sides: the places align with the rows without a lookup
        return EventMatrix(vectors, bias, place.ids, known, place, content, trend)

    def score(self, user: UserContext, events: EventMatrix,
              user_override: tuple[np.ndarray, float] | None = None,
              rows: np.ndarray | None = None) -> np.ndarray:
        """Scores of every event in the matrix (or of its rows `rows`) for this user: one
        matrix-vector product plus the place term (the hybrid alone: `blend_users` adds the
        co-attendance component over a user's candidates)."""
        vec, ubias = user_override if user_override is not None else self.user_vector(user)
        vectors, bias = (events.vectors, events.bias) if rows is None else \
            (events.vectors[rows], events.bias[rows])
        scores = vectors @ np.asarray(vec, dtype=np.float32) + bias + np.float32(ubias)
        place = self.place_scores(user, events, rows)
        return scores if place is None else scores + place

    def blend_users(self, scores: np.ndarray, histories: list[Any],
                    event_ids: np.ndarray) -> np.ndarray:
        """[users, events] hybrid scores blended with the co-attendance component (unchanged
        without one); `histories`: per user, the ids of the events they registered for."""
        if self.coattendance is None:
            return scores
        return self.coattendance.blended(scores, histories, event_ids)

    def content_parts(self, scores: np.ndarray, histories: Sequence[Any], events: EventMatrix,
                      cols: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(hybrid part, content part) of [users, events] scores (the events at `cols` of the
        matrix) blended with the content component on the events the model does not know;
        None without the component, a cold candidate or a user history it knows.
        `histories`: per user, the ids of the events they registered for."""
        if self.content is None or events.content is None:
            return None
        cold = ~events.known if cols is None else ~events.known[cols]
        return self.content.parts(scores, histories, events.content, cold, cols)

    def blend_content(self, scores: np.ndarray, histories: Sequence[Any], events: EventMatrix,
                      cols: np.ndarray | None = None) -> np.ndarray:
        """`content_parts` added up (the scores unchanged where it gives None)."""
        parts = self.content_parts(scores, histories, events, cols)
        return scores if parts is None else parts[0] + parts[1]

    def blend_trend(self, scores: np.ndarray, has_history: np.ndarray,
                    event_ids: np.ndarray) -> np.ndarray:
        """[users, events] scores (after the other components) blended with the trend
        component (unchanged without one); `has_history`: [users] whether each user has
        registered for something (the trend's weight differs for users without history)."""
        if self.trend is None:
            return scores
        return self.trend.blended(scores, has_history, self.trend.values(event_ids))


    def explain(self, user: UserContext, event_row: Mapping[str, Any], top: int = 3,
                user_override: tuple[np.ndarray, float] | None = None) -> list[tuple[str, float]]:
        """The event's terms that add most to its score (token . user + token bias), best first.
        Terms: feature tokens ("tag:jazz", "organizer:Blue Note", ...) and "event:<id>" for the
        event's own id embedding (what similar users did with it)."""
        return self.explain_many(user, [event_row], top, user_override)[0]

    def explain_many(self, user: UserContext, event_rows: Sequence[Mapping[str, Any]],
                     top: int = 3, user_override: tuple[np.ndarray, float] | None = None,
                     tokens: Sequence[Sequence[str]] | None = None
                     ) -> list[list[tuple[str, float]]]:
        """explain() of several events for one user: the place terms and the id rows in one
        vectorized pass (a page of reasons). `tokens`: each row's event_tokens when the caller
        holds them already."""
        self._require()
        vec, _ = user_override if user_override is not None else self.user_vector(user)
        places: list[float | None] = [None] * len(event_rows)
        if self.has_place_term:
            places = self._place_terms(user, [(row.get("latitude"), row.get("longitude"),
                                               row.get("city")) for row in event_rows])
        ids = [row.get("id") for row in event_rows]
        known = [i for i, event_id in enumerate(ids) if event_id is not None
                 and not pd.isna(event_id)]
        id_rows = np.full(len(ids), -1, dtype=np.int64)
        if known:
            id_rows[known] = self.event_map.rows([int(ids[i]) for i in known])
        token_lists = tokens if tokens is not None else [event_tokens(r) for r in event_rows]
        index = self.event_vocab.index
        found = [[(token, index[token]) for token in toks if token in index]
                 for toks in token_lists]
        token_values = iter(self._dots("event_tok", [i for f in found for _, i in f], vec))
        id_values = iter(self._dots("event_id", id_rows[id_rows >= 0], vec))
        pages = []
        for row, row_found, id_row, place in zip(event_rows, found, id_rows, places):
            terms = [(token, next(token_values)) for token, _ in row_found]
            if id_row >= 0:
                label = row.get("event_id", row.get("id"))
                terms.append((f"event:{label}", next(id_values)))
            if place is not None:
                terms.append((PLACE_TOKEN, place))
            terms.sort(key=lambda item: -item[1])
            pages.append(terms[:top])
        return pages

    def _dots(self, table: str, rows, vec: np.ndarray) -> list[float]:
        """weights[table][rows] . vec + the table's bias, as Python floats: a product and a
        sum per row, so each row's value does not depend on the other rows asked with it (a
        matrix product may round a row differently with another row count)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return []
        weights, bias = self.weights[table], self.weights[table + "_bias"]
        return ((weights[rows] * vec).sum(axis=1) + bias[rows]).tolist()


    def to_bytes(self) -> bytes:
        """Weights, id maps, vocabularies and config in one npz blob (no pickle)."""
        return model_to_bytes(self)

    @classmethod
    def from_bytes(cls, blob: bytes) -> "HybridModel":
        """Load a blob written by to_bytes. Never executes code from the blob; a damaged or
        foreign blob raises BeaconError."""
        return model_from_bytes(cls, blob)
