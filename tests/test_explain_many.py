"""The place terms of a page of reasons in one vectorized pass (explain_many, what recommend
uses) equal the one-event place term, for every mix of known and unknown places, cities and
homes."""
from __future__ import annotations

import numpy as np
import pytest

from beacon.features import UserContext
from tests.test_model_contract import place_model, twin_events  # noqa: F401 - a fixture

USERS = (
    UserContext(user_id=None, latitude=52.52, longitude=13.40, city="Berlin"),
    UserContext(user_id=None, latitude=40.71, longitude=-74.00, city="New York"),
    UserContext(user_id=None, latitude=52.52, longitude=13.40, city=None),
    UserContext(user_id=None, city="Berlin"),
    UserContext(user_id=None),
)


@pytest.fixture(scope="module")
def page():
    events = twin_events("Berlin", (52.53, 13.41), "Paris", (48.86, 2.34))
    blank, half = events.copy(), events.copy()
    blank.loc[0, ["latitude", "longitude"]] = np.nan
    blank.loc[0, "city"] = None
    half.loc[0, ["latitude", "longitude"]] = np.nan
    half.loc[1, "city"] = None
    return [frame.iloc[i].to_dict() for frame in (events, blank, half) for i in (0, 1)]


def test_place_terms_of_a_page_equal_one_event_at_a_time(place_model, page) -> None:  # noqa: F811
    assert place_model.has_place_term
    for user in USERS:
        together = place_model._place_terms(
            user, [(r["latitude"], r["longitude"], r["city"]) for r in page])
        alone = [place_model._place_term(user, r["latitude"], r["longitude"], r["city"])
                 for r in page]
        assert [t is None for t in together] == [a is None for a in alone]
        np.testing.assert_allclose([t for t in together if t is not None],
                                   [a for a in alone if a is not None], rtol=1e-6, atol=1e-7)
