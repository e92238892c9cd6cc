"""The components' rows the console shows, from stored reports with known answers."""
from __future__ import annotations

from beacon.components_view import COMPONENT_NAMES, component_comparison, component_rows

ON = {
    "coattendance": {"weight": 0.25, "lambda": 250.0, "recency": 0.12, "events": 1500,
                     "validation_hybrid_ndcg": 0.12798, "validation_blend_ndcg": 0.19671},
    "content": {"weight": 0.5, "neighbours": 0, "popularity_weight": 2.0, "events": 1682,
                "terms": 3100, "validation_cold_events": 330, "validation_hybrid_ndcg": 0.136,
                "validation_blend_ndcg": 0.2},
    "trend": {"weight_known": 0.0, "weight_new": 0.7, "half_life_days": 30.0, "events": 900,
              "validation_split_time": 1, "validation_users": {"known": 10, "new": 5},
              "validation_ndcg": {"known": {"alone": 0.15375, "blend": 0.15375},
                                  "new": {"alone": 0.37236, "blend": 0.40895}}},
}
OFF = {
    "coattendance": {"weight": 0.0, "lambda": None, "recency": None, "events": 0,
                     "validation_hybrid_ndcg": 0.3, "validation_blend_ndcg": None},
    "content": {"weight": 0.0, "neighbours": None, "popularity_weight": 0.0, "events": 0,
                "terms": 0, "validation_cold_events": None, "validation_hybrid_ndcg": None,
                "validation_blend_ndcg": None},
    "trend": {"weight_known": 0.0, "weight_new": 0.0, "half_life_days": None, "events": 0,
              "validation_split_time": None, "validation_users": None, "validation_ndcg": None},
}


def test_components_that_are_on_say_what_they_chose_and_what_it_gained():
    rows = component_rows(ON)
    assert rows == [
        {"component": COMPONENT_NAMES["coattendance"], "state": "on",
         "chose": "weight 0.25, lambda 250, history weighed newest first (half-life 12% of it), "
                  "1,500 events",
         "validation": "0.128 -> 0.197"},
        {"component": COMPONENT_NAMES["content"], "state": "on",
         "chose": "weight 0.5 on events new to the model, the whole profile of past events, "
                  "the terms' recent popularity x2, 3,100 terms",
         "validation": "0.136 -> 0.200"},
        {"component": COMPONENT_NAMES["trend"], "state": "on",
         "chose": "weight 0 for users with history, 0.7 for users without, half-life 30 days",
         "validation": "0.154 -> 0.154 / 0.372 -> 0.409"},
    ]


def test_components_left_off_say_so_and_a_missing_report_has_no_rows():
    rows = component_rows(OFF)
    assert [row["state"] for row in rows] == ["off", "off", "off"]
    assert rows[0]["chose"] == "did not beat the model without it"
    assert rows[0]["validation"] == "0.300"
    assert rows[1]["validation"] == "" and rows[2]["validation"] == ""
    assert component_rows({}) == []
    no_recency = dict(ON["coattendance"], recency=0.0)
    assert "every past registration counts the same" in \
        component_rows({"coattendance": no_recency})[0]["chose"]


def test_two_versions_side_by_side():
    rows = component_comparison(component_rows(OFF), component_rows(ON), "v1", "v2")
    assert [row["component"] for row in rows] == list(COMPONENT_NAMES.values())
    assert rows[0]["v1"] == "off (did not beat the model without it)"
    assert rows[0]["v2"].startswith("weight 0.25, lambda 250")
    assert component_comparison([], component_rows(ON), "v1", "v2")[2]["v1"] == "not recorded"
    assert component_comparison([], [], "v1", "v2") == []
