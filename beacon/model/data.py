"""Training data as the network sees it: frame rows, token rows, weighted pairs, the split."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from beacon.config import ModelConfig
from beacon.errors import BeaconError
from beacon.features import (
    PLACE_FEATURES,
    Places,
    Vocabulary,
    centered_place_features,
    event_token_rows,
    event_token_table,
    place_features,
    user_token_rows,
    user_token_table,
)
from beacon.idmap import IdMap

MIN_VALIDATION_POSITIVES = 20
PLACE_CENTER_PAIRS = 100_000  # random (user, event) pairs that fix the place features' centers
N_PLACE = len(PLACE_FEATURES)


@dataclass
class _Prepared:
    users: pd.DataFrame
    events: pd.DataFrame
    user_frame: IdMap
    event_frame: IdMap
    user_vocab: Vocabulary
    event_vocab: Vocabulary
    user_tok: np.ndarray  # [n_users_frame, Lu]
    event_tok: np.ndarray  # [n_events_frame, Le]
    event_start: np.ndarray  # int64 epoch seconds per event frame row
    rows: pd.DataFrame  # urow, erow, weight, t (one line per interaction with nonzero weight)
    max_weight: float
    user_place: Places | None = None
    event_place: Places | None = None
    place_center: np.ndarray | None = None  # [3] mean raw place features of random pairs

    @property
    def has_place(self) -> bool:
        """Whether any (user, event) pair has a known place feature: both a location, or a
        user city and an event city. Without one every centered feature is 0 and the place
        term is identically 0, so training and validation skip computing it."""
        if "_has_place" not in self.__dict__:
            u, e = self.user_place, self.event_place
            self.__dict__["_has_place"] = u is not None and e is not None and bool(
                (np.isfinite(u.lat) & np.isfinite(u.lon)).any()
                and (np.isfinite(e.lat) & np.isfinite(e.lon)).any()
                or ((u.city != -1).any() and (e.city >= 0).any()))
        return self.__dict__["_has_place"]

    def place(self, urow: np.ndarray, erow: np.ndarray) -> np.ndarray:
        """[..., 3] centered place features of (user row, event row) pairs (broadcast)."""
        u, e = self.user_place, self.event_place
        raw = place_features(u.xyz[urow], u.city[urow], e.xyz[erow], e.city[erow])
        return centered_place_features(raw, self.place_center)


def _prepare(data: Any, config: ModelConfig) -> _Prepared:
    users = data.users.reset_index(drop=True)
    events = data.events.reset_index(drop=True)
    inter = data.interactions
    if len(inter) == 0 or len(events) == 0:
        raise BeaconError("nothing to train on: no interactions (load or import data first)")
    user_frame = IdMap(users["id"].to_numpy(dtype=np.int64))
    event_frame = IdMap(events["id"].to_numpy(dtype=np.int64))
    types = inter["type"].astype(str).to_numpy()
    weight_of = {t: config.weight(t) for t in pd.unique(types)}
    weight = pd.Series(types).map(weight_of).to_numpy(dtype=np.float64)
    rows = pd.DataFrame({
        "urow": user_frame.rows(inter["user_id"].to_numpy(dtype=np.int64)),
        "erow": event_frame.rows(inter["event_id"].to_numpy(dtype=np.int64)),
        "type": types,
        "weight": weight,
        "t": inter["occurred_at"].to_numpy(dtype=np.int64),
    })
    rows = rows[(rows["urow"] >= 0) & (rows["erow"] >= 0) & (rows["weight"] != 0)]
    # The same action logged twice counts once.
    rows = rows.drop_duplicates(["urow", "erow", "type"], keep="first")
    if not (rows["weight"] > 0).any():
        raise BeaconError("nothing to train on: no positive interactions "
                          "(register, attend, favorite, share, click or view)")
    user_table = user_token_table(users)
    event_table = event_token_table(events)
    user_vocab = Vocabulary.build(user_table["token"])
    event_vocab = Vocabulary.build(event_table["token"])
    start = pd.to_datetime(events["start_time"], utc=True)
    event_start = ((start - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(
        dtype=np.int64)
    event_place = Places.of(events)
    user_place = Places.of(users, event_place.cities)
    rng = np.random.default_rng(config.seed + 2)
    positive_users = rows.loc[rows["weight"] > 0, "urow"].to_numpy()
    n_sample = min(PLACE_CENTER_PAIRS, max(len(positive_users), 1) * 50)
    su = rng.choice(positive_users, n_sample) if len(positive_users) else np.zeros(0, np.int64)
    se = rng.integers(0, len(events), n_sample)
    raw = place_features(user_place.xyz[su], user_place.city[su], event_place.xyz[se],
                         event_place.city[se])
    with warnings.catch_warnings():  # a feature nobody has (no coordinates at all): NaN -> 0
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nanmean(raw, axis=0) if len(raw) else np.zeros(N_PLACE)
    center = np.nan_to_num(np.asarray(center, dtype=np.float64), nan=0.0)
    return _Prepared(
        users=users, events=events, user_frame=user_frame, event_frame=event_frame,
        user_vocab=user_vocab, event_vocab=event_vocab,
        user_tok=user_token_rows(users, user_vocab, pad=len(user_vocab)),
        event_tok=event_token_rows(events, event_vocab, pad=len(event_vocab)),
        event_start=event_start, rows=rows.reset_index(drop=True),
        max_weight=float(max(config.type_weights.values())),
        user_place=user_place, event_place=event_place, place_center=center,
    )


def _pairs(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (user, event): summed weight, time of the first interaction."""
    grouped = rows.groupby(["urow", "erow"], sort=True).agg(weight=("weight", "sum"),
                                                            t=("t", "min"))
    grouped = grouped[grouped["weight"] != 0].reset_index()
    return grouped


def _split_time(rows: pd.DataFrame, fraction: float) -> int | None:
    """The time after which the last `fraction` of positive interactions happened."""
    if fraction <= 0:
        return None
    positive_t = np.sort(rows.loc[rows["weight"] > 0, "t"].to_numpy())
    n_val = int(round(len(positive_t) * fraction))
    if n_val < MIN_VALIDATION_POSITIVES or n_val >= len(positive_t):
        return None
    split = int(positive_t[len(positive_t) - n_val])
    if split <= positive_t[0]:
        return None
    return split


def _user_split(rows: pd.DataFrame, fraction: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The per-user time split: each user's last `fraction` of positive interactions (at
    least one, for users with three or more) and whatever that user did from then on are
    validation. Returns (is_validation per row, split time per user row: int64 max for a user
    kept whole), or None when too few positives would be held out."""
    if fraction <= 0 or rows.empty:
        return None
    positive = rows[rows["weight"] > 0].sort_values(["urow", "t"], kind="stable")
    count = positive.groupby("urow")["t"].transform("size").to_numpy()
    position = positive.groupby("urow").cumcount().to_numpy()
    n_val = np.where(count >= 3, np.maximum(1, np.round(count * fraction)), 0).astype(np.int64)
    first_val = positive[position == count - n_val]
    first_val = first_val[n_val[position == count - n_val] > 0]
    if int(n_val[position == 0].sum()) < MIN_VALIDATION_POSITIVES:
        return None
    n_users = int(rows["urow"].max()) + 1
    user_split = np.full(n_users, np.iinfo(np.int64).max, dtype=np.int64)
    user_split[first_val["urow"].to_numpy()] = first_val["t"].to_numpy()
    is_val = rows["t"].to_numpy() >= user_split[rows["urow"].to_numpy()]
    if is_val.all() or not is_val.any():
        return None
    return is_val, user_split
