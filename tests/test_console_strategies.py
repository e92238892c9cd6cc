"""AppTest: the Recommendations page's strategy choice and side-by-side view on the demo."""
from __future__ import annotations

from tests.test_console_user import _active_user, demo, errors, no_exception, on_demo, open_page

__all__ = ["demo", "on_demo"]  # fixtures used by name below


def _markdown(at) -> list[str]:
    return [m.value for m in at.markdown]


def test_side_by_side_compares_the_chosen_strategies(on_demo):
    from beacon import insights
    from beacon.recommend import recommend

    email = _active_user(1)
    at = open_page("pages/recommendations.py")
    at.text_input(key="recs_email").set_value(email).run()
    at.number_input(key="recs_top").set_value(5).run()
    # the default: the model's list next to popularity and the previous version
    assert at.selectbox(key="recs_strategy").value == "beacon"
    assert "**Strategy: popularity**" in _markdown(at)
    assert any(m.startswith("**Previous model version") for m in _markdown(at))

    at.selectbox(key="recs_strategy").set_value("content").run()
    at.multiselect(key="recs_compare").set_value(["beacon", "popularity", "content"]).run()
    no_exception(at)
    assert not errors(at)
    main = next(d.value for d in at.dataframe if "reason" in d.value.columns
                and "in main list" not in d.value.columns)
    expected = recommend(email, top=5, strategy="content")
    assert list(main["event_id"]) == [item.event_id for item in expected.items]
    assert set(main["source"]) <= {"content", "popularity"}
    # the main strategy is not compared with itself: two lists beside it, in the order asked
    titles = [m for m in _markdown(at) if m.startswith("**Strategy: ")]
    assert titles == ["**Strategy: beacon**", "**Strategy: popularity**"]
    comparison = insights.compare_recommendations(email, top=5, strategy="content",
                                                  compare=("beacon", "popularity"))
    overlaps = [m.value for m in at.metric if m.label == "Overlap with the content list"]
    assert overlaps == [f"{ranked.overlap} of 5" for ranked in comparison.others]
    beside = [d.value for d in at.dataframe if "in main list" in d.value.columns]
    assert [list(frame["event_id"]) for frame in beside] == [
        ranked.event_ids for ranked in comparison.others]

    at.multiselect(key="recs_compare").set_value([]).run()
    no_exception(at)
    assert any("Choose strategies to compare" in c.value for c in at.caption)


def test_models_page_shows_each_strategy_its_users_and_an_unmeasurable_cold_block(on_demo):
    from beacon.evaluate import NOT_MEASURABLE
    from data_access import models_store
    from tests.test_console_ops import app

    active = models_store.active_version("global")
    metrics = dict(active.metrics)
    assert "content" in metrics, metrics.get("evaluation_error")
    at = app("pages/models.py")
    no_exception(at)
    table = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    assert {"beacon", "popularity", "popularity_city", "content"} <= set(table.columns)
    assert set(table["metric"]) >= {"ndcg", "hit_rate", "coverage"}
    captions = [c.value for c in at.caption]
    assert f"Each figure averages over {metrics['users_evaluated']:,} users (those who " \
           "registered after the holdout cutoff)." in captions

    why = "no user registered after the cutoff for an event nobody had touched before it"
    metrics["cold"] = {"users_evaluated": 0, "candidates": 3, "measurable": False,
                       "note": f"{NOT_MEASURABLE}: {why}", "beacon": None, "popularity": None,
                       "content": None}
    unmeasured = models_store.insert_version(scope="global", blob=b"-", fingerprint="f",
                                             metrics=metrics, created_by="test")
    at = app("pages/models.py")
    at.selectbox(key="version_pick").set_value(unmeasured).run()
    no_exception(at)
    assert f"Not measurable on this data: {why}." in [c.value for c in at.caption]
    assert not any(d.value.shape[0] and "metric" in d.value.columns and
                   d.value["beacon"].isna().all() for d in at.dataframe)
