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
