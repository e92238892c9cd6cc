"""The pairwise place term at serving time (mixed into HybridModel): weights of the centered
features same city, log1p(km), exp(-km / 10) between a user's home and each event."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from beacon.features import (
    PLACE_FEATURES,
    Places,
    UserContext,
    norm,
    place_features,
    place_term,
    unit_xyz,
)
from beacon.model.records import EventMatrix


class PlaceTerm:
    """Needs self.weights (place_w, place_center)."""

    @property
    def place_weights(self) -> np.ndarray:
        """Weights of the centered place features (zeros: a model from before the term)."""
        w = self.weights.get("place_w")
        return np.zeros(len(PLACE_FEATURES), np.float32) if w is None else w

    @property
    def place_center(self) -> np.ndarray:
        c = self.weights.get("place_center")
        return np.zeros(len(PLACE_FEATURES), np.float32) if c is None else c

    @property
    def has_place_term(self) -> bool:
        return bool(np.any(self.place_weights != 0))

    def _event_places(self, events: EventMatrix) -> tuple[np.ndarray, np.ndarray,
                                                          Places] | None:
        place = events.place
        if place is None:
            return None
        xyz, city = place.take(place.rows_for(events.event_ids))
        return xyz, city, place

    def _place_arrays(self, events: EventMatrix, subset: np.ndarray | None):
        """(xyz, city, places) of the matrix's events, or of its rows `subset`; None when the
        model has no place term or the matrix carries no places."""
        if not self.has_place_term:
            return None
        found = self._event_places(events)
        if found is None:
            return None
        xyz, city, place = found
        if subset is not None:
            xyz, city = xyz[subset], city[subset]
        return xyz, city, place

    def place_scores(self, user: UserContext, events: EventMatrix,
                     rows: np.ndarray | None = None) -> np.ndarray | None:
        """The place term of this user against every event of the matrix (or its rows `rows`)
        ([n] float32), or None when the model has none (or the matrix carries no places)."""
        found = self._place_arrays(events, rows)
        if found is None:
            return None
        xyz, city, place = found
        uxyz = unit_xyz(_radians(user.latitude), _radians(user.longitude))
        return place_term(uxyz, place.city_code(user.city), xyz, city, self.place_center,
                          self.place_weights)

    def place_matrix(self, users: pd.DataFrame, events: EventMatrix,
                     cols: np.ndarray | None = None) -> np.ndarray | None:
        """[users, events] place term for a frame of users (latitude, longitude, city) against
        the matrix's events (or its columns `cols`); None when the model has no place term."""
        found = self._place_arrays(events, cols)
        if found is None:
            return None
        xyz, city, place = found
        users = users.reset_index(drop=True)
        upl = Places.of(users, place.cities)
        ucity = np.where(upl.city >= len(place.cities), -2, upl.city)  # names the events lack
        return place_term(upl.xyz[:, None, :], ucity[:, None], xyz[None, :, :], city[None, :],
                          self.place_center, self.place_weights)

    def score_users(self, users: pd.DataFrame, events: EventMatrix,
                    cols: np.ndarray | None = None) -> np.ndarray:
        """[users, events] scores for a frame of users (the id embedding where known, feature
        tokens, and the place term): what `score` gives one user at a time, in one pass."""
        vectors = self.user_matrix(users)
        ev, bias = (events.vectors, events.bias) if cols is None else \
            (events.vectors[cols], events.bias[cols])
        scores = vectors @ ev.T + bias[None, :]
        place = self.place_matrix(users, events, cols)
        return scores if place is None else scores + place

    def _place_term(self, user: UserContext, latitude: Any, longitude: Any,
                    city: Any) -> float | None:
        """The place term of one (user, event) pair; None when neither side's place is known
        well enough to compare (missing home or event place)."""
        ecity = 0 if _city_name(city) else -1
        ucity = -1
        if _city_name(user.city):
            ucity = 0 if _city_name(user.city) == _city_name(city) else -2
        uxyz = unit_xyz(_radians(user.latitude), _radians(user.longitude))
        exyz = unit_xyz(_radians(latitude), _radians(longitude))
        if np.isnan(place_features(uxyz, ucity, exyz, ecity)).all():
            return None
        return float(place_term(uxyz, ucity, exyz, ecity, self.place_center,
                                self.place_weights))


    def _place_terms(self, user: UserContext, places: list[tuple[Any, Any, Any]]
                     ) -> list[float | None]:
        """_place_term of one user and several events ((latitude, longitude, city) each) in
        one vectorized pass: a page of reasons pays numpy's call overhead once, not per
        event."""
        if not places:
            return []
        home_city = _city_name(user.city)
        cities = [_city_name(city) for _, _, city in places]
        ecity = np.array([0 if name else -1 for name in cities])
        ucity = np.array([-1 if not home_city else 0 if home_city == name else -2
                          for name in cities])
        uxyz = unit_xyz(_radians(user.latitude), _radians(user.longitude))
        exyz = unit_xyz([_radians(lat) for lat, _, _ in places],
                        [_radians(lon) for _, lon, _ in places])
        # every feature unknown (place_features all NaN): no city pair and no distance
        unknown = (((ucity == -1) | (ecity < 0))
                   & (np.isnan(exyz).any(axis=-1) | bool(np.isnan(uxyz).any())))
        terms = place_term(uxyz, ucity, exyz, ecity, self.place_center, self.place_weights)
        return [None if gone else term for gone, term in zip(unknown.tolist(), terms.tolist())]


def _radians(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return math.radians(number) if math.isfinite(number) else float("nan")


def _city_name(value: Any) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return norm(value)
