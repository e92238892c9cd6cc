"""refresh_recommendations(actor=ADMIN): every user's top N through recommend(), replaced atomically."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from beacon.cache import cached_rows, refresh_recommendations
from beacon.errors import UnknownUser
from beacon.filters import FilterParams
from beacon.recommend import recommend
from data_access.db import session_scope
from data_access.recommendations import cached_recommendations
from data_access.schema import UserRecommendation
from tests.test_cli import run_cli
from tests.test_filters import seed
from tests.test_recommend import NOW, world
from tests.auth_support import ADMIN


def _rows_per_user() -> dict[int, int]:
    with session_scope() as session:
        return dict(session.execute(
            select(UserRecommendation.user_id, func.count()).group_by(UserRecommendation.user_id)
        ).all())


def test_refresh_all_users_writes_what_recommend_returns(db: str) -> None:
    ids = world()
    calls = []
    summary = refresh_recommendations(top=3, progress=lambda done, total: calls.append((done, total)),
                                      batch_size=4, now=NOW, actor=ADMIN)
    users = len(ids["users"])
    assert summary.users == users and summary.rows == 3 * users
    assert summary.sources == {"popularity": users}
    # once before the first batch (a progress clock starts there), then 10 users in batches of 4
    assert calls == [(0, users), (4, users), (8, users), (users, users)]
    assert set(_rows_per_user().values()) == {3}
    cached = cached_recommendations(ids["users"]["jazz3@example.com"])
    live = recommend("jazz3@example.com", FilterParams(), top=3, now=NOW)
    assert [c["event_id"] for c in cached] == [r.event_id for r in live.items]
    assert [c["rank"] for c in cached] == [1, 2, 3]
    assert cached[0]["strategy"] == "popularity" and cached[0]["reason"] == live.items[0].reason
    assert cached[0]["generated_at"] == NOW


def test_refresh_replaces_rows_and_one_user_refresh_touches_only_that_user(db: str) -> None:
    ids = world()
    refresh_recommendations(top=5, now=NOW, actor=ADMIN)
    later = NOW + timedelta(minutes=5)
    # jazz-0 gets rejected: the refresh of that one user drops it and leaves the others alone
    seed(interactions=[{"email": "jazz1@example.com", "event_id": "jazz-0", "type": "reject",
                        "at": NOW}])
    summary = refresh_recommendations(top=2, user="jazz1@example.com", now=later, actor=ADMIN)
    assert summary.users == 1 and summary.rows == 2
    counts = _rows_per_user()
    assert counts[ids["users"]["jazz1@example.com"]] == 2
    assert counts[ids["users"]["jazz2@example.com"]] == 5
    mine = cached_recommendations(ids["users"]["jazz1@example.com"])
    assert "jazz-0" not in {c["event_id"] for c in mine}
    assert {c["generated_at"] for c in mine} == {later}
    assert {c["generated_at"] for c in cached_recommendations(ids["users"]["jazz2@example.com"])} == {NOW}


def test_refresh_of_an_unknown_user(db: str) -> None:
    with pytest.raises(UnknownUser):
        refresh_recommendations(user="ghost@example.com", actor=ADMIN)


def test_refresh_with_no_events_clears_stale_rows(db: str) -> None:
    ids = world()
    refresh_recommendations(top=3, now=NOW, actor=ADMIN)
    # a year later nothing is upcoming: every user's list becomes empty, none are left stale
    summary = refresh_recommendations(top=3, now=NOW + timedelta(days=365), actor=ADMIN)
    assert summary.rows == 0 and summary.users == len(ids["users"])
    assert _rows_per_user() == {}


def test_cli_refresh_json(db: str) -> None:
    world()
    out = run_cli("refresh-recommendations", "--top", "2", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["users"] == 10 and payload["rows"] == 20
    assert payload["sources"] == {"popularity": 10}
    one = run_cli("refresh-recommendations", "--user", "jazz0@example.com")
    assert one.returncode == 0 and "refreshed 1 user" in one.stdout
    bad = run_cli("refresh-recommendations", "--user", "ghost@example.com")
    assert bad.returncode == 2 and "unknown user" in bad.stderr


def test_a_list_holding_an_event_deleted_since_it_was_ranked_is_stored_without_it(db: str) -> None:
    """A cancellation between the ranking and the write failed the write of every list that
    held the event (a foreign key), so the whole refresh batch fell back user by user."""
    from data_access import catalog_sync
    from data_access.catalog import user_by_email
    from data_access.recommendations import replace_recommendations

    world()
    ranked = recommend("jazz3@example.com", FilterParams(), top=3, now=NOW)
    rows = cached_rows(ranked)
    assert catalog_sync.delete_event(ranked.items[1].event_id)
    user = user_by_email("jazz3@example.com")
    assert replace_recommendations({user.id: rows}, generated_at=NOW) == 2
    cached = cached_recommendations(user.id)
    assert [c["event_id"] for c in cached] == [ranked.items[0].event_id, ranked.items[2].event_id]
    assert [c["rank"] for c in cached] == [1, 2]
