"""IdMap: external ids <-> contiguous rows."""
from __future__ import annotations

import numpy as np
import pytest

from beacon.idmap import IdMap


def test_integer_ids_keep_first_seen_order():
    m = IdMap.from_ids(np.array([50, 7, 50, 12, 7], dtype=np.int64))
    assert m.to_list() == [50, 7, 12]
    assert len(m) == 3
    assert [m.row(50), m.row(7), m.row(12)] == [0, 1, 2]
    assert m.id(2) == 12 and isinstance(m.id(2), int)


def test_rows_are_vectorized_with_minus_one_for_unknown():
    m = IdMap.from_ids([30, 10, 20])
    np.testing.assert_array_equal(m.rows(np.array([20, 99, 30, -5, 10])), [2, -1, 0, -1, 1])
    np.testing.assert_array_equal(m.rows([]), np.empty(0, dtype=np.int64))
    assert m.rows([10]).dtype == np.int64
    assert m.row(99) == -1 and m.row(None) == -1 and m.row("10") == -1
    assert 10 in m and 11 not in m


def test_string_ids():
    m = IdMap.from_ids(["ev-b", "ev-a", "ev-b"])
    assert m.to_list() == ["ev-b", "ev-a"]
    np.testing.assert_array_equal(m.rows(["ev-a", "nope", "ev-b"]), [1, -1, 0])
    assert m.id(1) == "ev-a"


def test_round_trip_through_a_list():
    m = IdMap.from_ids([5, 3, 9])
    again = IdMap.from_list(m.to_list())
    assert again == m
    np.testing.assert_array_equal(again.rows([9, 5, 3]), m.rows([9, 5, 3]))


def test_empty_map_and_bad_rows():
    m = IdMap(np.empty(0, dtype=np.int64))
    assert len(m) == 0
    np.testing.assert_array_equal(m.rows([1, 2]), [-1, -1])
    with pytest.raises(IndexError):
        m.id(0)
    with pytest.raises(IndexError):
        IdMap.from_ids([1]).id(-1)


def test_duplicates_are_refused_by_the_constructor():
    with pytest.raises(ValueError):
        IdMap(np.array([1, 1]))
    with pytest.raises(ValueError):
        IdMap(["a", "a"])


def test_float_lookups_of_integer_ids():
    m = IdMap.from_ids([1, 2, 3])
    np.testing.assert_array_equal(m.rows(np.array([2.0, 2.5, np.nan])), [1, -1, -1])
