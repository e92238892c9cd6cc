"""The HTTP API through FastAPI's TestClient, on the test database (SQLite or Postgres):
keys and scopes, every endpoint, 422 naming the field, idempotent ingest, attribution,
a reject then a recommend, a cancelled event, the old client's body."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api_support import Api, api, api_client  # noqa: F401 - api is a fixture
from tests.test_recommend import BERLIN, NOW, world

JAZZ = "jazz1@example.com"



# (method, path, scope it needs, JSON body)
ENDPOINTS = [
    ("GET", f"/v1/users/{JAZZ}/recommendations", "recommend", None),
    ("POST", "/v1/recommend", "recommend", {"email": JAZZ}),
    ("GET", "/v1/events/jazz-1/similar", "recommend", None),
    ("GET", f"/v1/stats/users/{JAZZ}", "recommend", None),
    ("GET", "/v1/stats/global", "recommend", None),
    ("POST", "/v1/interactions", "ingest",
     {"interactions": [{"id": "s1", "email": JAZZ, "event_id": "jazz-2", "type": "view"}]}),
    ("PUT", "/v1/events/new-1", "ingest",
     {"title": "New", "start_time": (NOW + timedelta(days=3)).isoformat()}),
    ("PUT", "/v1/users/fresh@example.com", "ingest", {"interests": ["jazz"]}),
    ("DELETE", "/v1/events/techno-3", "ingest", None),
    ("GET", "/v1/models", "admin", None),
    ("GET", "/v1/models/1", "admin", None),
    ("POST", "/v1/models/1/activate", "admin", None),
    ("POST", "/v1/models/cleanup", "admin", {"keep_days": 30, "dry_run": True}),
    ("POST", "/v1/debug/filter", "admin", {"email": JAZZ}),
    ("DELETE", f"/v1/users/{JAZZ}/model", "admin", None),
    ("POST", "/v1/train", "admin", {"scope": "user", "user": JAZZ}),
]


def _call(api: Api, method: str, path: str, body, headers: dict):
    return api.client.request(method, path, json=body, headers=headers)


def test_every_scope_is_refused_and_allowed(api: Api) -> None:
    from data_access import audit

    for method, path, scope, body in ENDPOINTS:
        missing = _call(api, method, path, body, {})
        assert missing.status_code == 401, (path, missing.text)
        assert missing.json()["error"]["field"] == "X-API-Key"
        unknown = _call(api, method, path, body, {"X-API-Key": api.keys[scope] + "x"})
        assert unknown.status_code == 401, path
        for other in ("recommend", "ingest", "admin"):
            if other != scope:
                before = len(audit.entries())
                refused = _call(api, method, path, body, api.headers(other))
                assert refused.status_code == 403, (path, other)
                assert scope in refused.json()["error"]["message"]
                # a refused change is in the audit trail under the key; a refused read is not,
                # and a change refused again within the minute adds nothing
                again = _call(api, method, path, body, api.headers(other))
                assert again.status_code == 403
                rows = audit.entries()[:len(audit.entries()) - before]
                if method == "GET" or path in ("/v1/recommend", "/v1/debug/filter"):
                    assert rows == [], (path, other)
                else:
                    [row] = rows
                    assert (row.who, row.kind, row.outcome) == (f"api:test-{other}", "api_key",
                                                                "refused"), (path, other)
                    assert row.action.startswith(f"{method} /v1/") and \
                        row.params["needs_scope"] == scope, row
                    # which key: a revoked key's name may pass to its replacement
                    assert api.keys[other].startswith(row.params["api_key"] + "_"), row
        allowed = _call(api, method, path, body, api.headers(scope))
        assert allowed.status_code in (200, 202), (path, allowed.text)
    from beacon import training

    training.wait_for_background(60)


def test_health_and_metrics_are_open(api: Api) -> None:
    assert api.client.get("/healthz/live").json() == {"status": "ok"}
    ready = api.client.get("/healthz/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["model"] == "ok"
    api.get(f"/v1/users/{JAZZ}/recommendations")
    text = api.client.get("/metrics").text
    assert 'beacon_http_requests_total{method="GET",route="/v1/users/{email}/recommendations",status="200"}' in text
    assert "beacon_http_request_seconds_bucket" in text
    assert "beacon_model_version_served" in text and "beacon_refresh_backlog_users" in text
    assert api.client.get("/openapi.json").json()["paths"]["/v1/recommend"]
    assert api.client.get("/docs").status_code == 200


def test_ready_is_503_without_a_model(db, monkeypatch) -> None:
    world()
    client = api_client(monkeypatch)
    ready = client.client.get("/healthz/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["model"].startswith("no active model")


def test_recommend_with_every_filter_matches_the_engine(api: Api) -> None:
    from beacon.filters import FilterParams
    from beacon.recommend import recommend

    day = (NOW + timedelta(days=3)).date().isoformat()
    query = {"n": 5, "lat": BERLIN[0], "lon": BERLIN[1], "max_km": 3.5, "dates": day,
             "start": "00:00", "end": "23:59", "reject": "jazz-9", "category": "music",
             "strategy": "beacon", "explain": "true"}
    got = api.get(f"/v1/users/{JAZZ}/recommendations", params=query).json()
    params = FilterParams.parse(lat=BERLIN[0], lon=BERLIN[1], max_km=3.5, dates=day,
                                start="00:00", end="23:59", reject="jazz-9", category="music")
    engine = recommend(JAZZ, params, top=5)
    assert [i["event_id"] for i in got["items"]] == [r.event_id for r in engine.items]
    assert got["items"] and all(i["reason"] for i in got["items"])
    assert got["model_version"] == engine.model_version and got["source"] == engine.source
    assert got["strategy"] == "beacon" and len(got["request_id"]) == 32
    quiet = api.get(f"/v1/users/{JAZZ}/recommendations", params={"explain": "false"}).json()
    assert quiet["items"] and all(i["reason"] is None for i in quiet["items"])
    pop = api.get(f"/v1/users/{JAZZ}/recommendations", params={"strategy": "popularity"}).json()
    assert pop["strategy"] == "popularity" and pop["source"] == "popularity"
    none = api.get(f"/v1/users/{JAZZ}/recommendations", params={"category": "theatre"}).json()
    assert none["items"] == []


def test_recommendations_do_not_wait_for_the_other_endpoints_threads(api: Api) -> None:
    # every thread of the other endpoints taken (as behind slow debug filters): the
    # recommendation endpoints still answer, key check included, on their own lane
    # (beacon/api/lanes.py); the key is new, so it is checked against the database
    import threading

    import anyio.to_thread

    portal = api.client.portal
    limiter = portal.call(anyio.to_thread.current_default_thread_limiter)
    holders = [object() for _ in range(int(limiter.total_tokens))]
    for holder in holders:
        portal.call(limiter.acquire_on_behalf_of, holder)
    answers: list = []
    asking = threading.Thread(target=lambda: answers.extend([
        api.get(f"/v1/users/{JAZZ}/recommendations", params={"n": 2}),
        api.post("/v1/recommend", {"email": JAZZ, "n": 2}),
        api.get("/v1/events/jazz-1/similar", params={"n": 2})]), daemon=True)
    try:
        asking.start()
        asking.join(60)
        waited = asking.is_alive()
    finally:
        for holder in holders:
            portal.call(limiter.release_on_behalf_of, holder)
        asking.join(60)
    assert not waited, "a recommendation waited for the other endpoints' threads"
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.json()["items"] for a in answers)


def test_offset_pages_through_the_same_ranking(api: Api) -> None:
    full = api.get(f"/v1/users/{JAZZ}/recommendations", params={"n": 6}).json()["items"]
    page = api.get(f"/v1/users/{JAZZ}/recommendations", params={"n": 3, "offset": 3}).json()
    assert [i["event_id"] for i in page["items"]] == [i["event_id"] for i in full[3:6]]
    assert [i["rank"] for i in page["items"]] == [4, 5, 6]


def test_the_old_client_body_gives_the_same_answer(api: Api) -> None:
    day = (NOW + timedelta(days=4)).date().isoformat()
    new = api.post("/v1/recommend", {
        "email": JAZZ, "lat": BERLIN[0], "lon": BERLIN[1], "max_km": 3.5, "dates": [day],
        "start": "00:00", "end": "23:59", "reject": ["jazz-2"], "n": 5}).json()
    old = api.post("/v1/recommend", {
        "email": JAZZ, "latitude": BERLIN[0], "longitude": BERLIN[1], "filter_distance": 3.5,
        "use_calendar_filter": True, "selected_dates": [day], "user_start_time": "00:00",
        "user_end_time": "23:59", "rejected_events": ["jazz-2"], "n": 5}).json()
    assert [i["event_id"] for i in old["items"]] == [i["event_id"] for i in new["items"]]
    assert old["items"] and "jazz-2" not in [i["event_id"] for i in old["items"]]
    # use_calendar_filter false: the selected dates are ignored
    off = api.post("/v1/recommend", {"email": JAZZ, "use_calendar_filter": False,
                                     "selected_dates": ["2020-01-01"]}).json()
    assert off["items"]
    clash = api.post("/v1/recommend", {"email": JAZZ, "lat": 1.0, "latitude": 2.0, "lon": 3.0})
    assert clash.status_code == 422 and "disagree" in clash.json()["error"]["message"]


def test_an_unknown_user_gets_the_cold_start_path_unless_known_only(api: Api) -> None:
    path = "/v1/users/stranger@example.com/recommendations"
    cold = api.get(path, params={"lat": BERLIN[0], "lon": BERLIN[1], "max_km": 2})
    body = cold.json()
    assert cold.status_code == 200 and body["known_user"] is False
    assert body["source"] == "features" and body["items"]
    assert all(i["distance_km"] <= 2 for i in body["items"])
    refused = api.get(path, params={"known_only": "true"})
    assert refused.status_code == 404 and refused.json()["error"]["field"] == "email"
    no_point = api.get(path, params={"max_km": 2})
    assert no_point.status_code == 422 and no_point.json()["error"]["field"] == "max_km"
    jazzy = api.post("/v1/recommend", {"email": "s@example.com", "interests": ["jazz"],
                                       "n": 3}).json()
    assert jazzy["known_user"] is False and jazzy["items"]


@pytest.mark.parametrize(("method", "path", "body", "params", "field"), [
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"n": 0}, "n"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"n": "ten"}, "n"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"offset": -1}, "offset"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"lat": 91, "lon": 0}, "lat"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"lat": 50}, "lat"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"max_km": -1}, "max_km"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"dates": "2026-13-01"}, "dates"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"start": "25:00", "end": "01:00"}, "start"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"start": "18:00"}, "start"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"strategy": "magic"}, "strategy"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"explain": "perhaps"}, "explain"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"known_only": "2"}, "known_only"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"reject": "a\x00b"}, "reject"),
    ("GET", f"/v1/users/{JAZZ}/recommendations", None, {"lat": "", "lon": "1"}, "lat"),
    ("GET", "/v1/events/jazz-1/similar", None, {"n": 101}, "n"),
    ("GET", "/v1/events/jazz-1/similar", None, {"category": "x" * 4001}, "category"),
    ("POST", "/v1/recommend", {"email": JAZZ, "n": False}, None, "n"),
    ("POST", "/v1/recommend", {"email": JAZZ, "n": "3"}, None, "n"),
    ("POST", "/v1/recommend", {"email": JAZZ, "lat": True, "lon": 1.0}, None, "lat"),
    ("POST", "/v1/recommend", {"email": JAZZ, "dates": ["tomorrow"]}, None, "dates[0]"),
    ("POST", "/v1/recommend", {"email": JAZZ, "surprise": 1}, None, "surprise"),
    ("POST", "/v1/recommend", {"n": 3}, None, "email"),
    ("POST", "/v1/interactions", {"interactions": []}, None, "interactions"),
    ("POST", "/v1/interactions", {"interactions": [
        {"id": "x", "email": JAZZ, "event_id": "jazz-1", "type": "like"}]}, None,
     "interactions[0].type"),
    ("POST", "/v1/interactions", {"interactions": [
        {"id": "x", "email": JAZZ, "event_id": "jazz-1", "type": "click",
         "occurred_at": "2026-12-01T10:00:00"}]}, None, "interactions[0].occurred_at"),
    ("POST", "/v1/interactions", {"interactions": [
        {"id": "x", "email": JAZZ, "event_id": "nope", "type": "click"}]}, None,
     "interactions[0].event_id"),
    ("POST", "/v1/interactions", {"interactions": [
        {"id": "x", "email": "not-an-email", "event_id": "jazz-1", "type": "click"}]}, None,
     "interactions[0].email"),
    ("POST", "/v1/interactions", {"interactions": [
        {"id": "x", "email": JAZZ, "event_id": "jazz-1", "type": "click",
         "occurred_at": "2099-01-01T00:00:00Z"}]}, None, "interactions[0].occurred_at"),
    ("POST", "/v1/interactions", {"interactions": [
        {"id": "x", "email": JAZZ, "event_id": "jazz-1", "type": "click",
         "occurred_at": "0001-01-01T00:00:00+01:00"}]}, None, "interactions[0].occurred_at"),
    ("POST", "/v1/interactions", {"interactions": [
        {"id": "x", "email": JAZZ, "event_id": "jazz-1", "type": "click"},
        {"id": "x", "email": JAZZ, "event_id": "jazz-1", "type": "register"}]}, None,
     "interactions[1].id"),
    ("POST", "/v1/interactions", {"interactions": [
        {"id": "x", "email": JAZZ, "event_id": "jazz-1", "type": "impression",
         "request_id": "0" * 32}]}, None, "interactions[0].request_id"),
    ("PUT", "/v1/events/e-1", {"title": "T", "start_time": "2026-12-24T20:00:00+01:00",
                               "timezone": "Mars/Olympus"}, None, "timezone"),
    ("PUT", "/v1/events/e-1", {"title": "T", "start_time": "soon"}, None, "start_time"),
    ("PUT", "/v1/events/e-1", {"title": "T", "start_time": "2026-12-24T20:00:00+01:00",
                               "price": -5}, None, "price"),
    ("PUT", "/v1/users/u@example.com", {"latitude": 10.0}, None, "latitude"),
    ("PUT", "/v1/users/not-an-email", {}, None, "email"),
    ("PUT", "/v1/events/e-1", {"title": "T", "start_time": "2026-12-24T20:00:00+01:00",
                               "end_time": "2026-12-24T20:00:00+01:00"}, None, "end_time"),
    ("PUT", "/v1/events/e-1", {"title": "T", "start_time": "2026-12-24T20:00:00+01:00",
                               "price": 2e6}, None, "price"),
    ("PUT", "/v1/events/e-1", {"title": "T", "start_time": "0001-01-01T00:00:00+14:00"}, None,
     "start_time"),
    ("PUT", "/v1/events/e-1", {"title": "T", "start_time": "9999-12-31T23:59:59-14:00"}, None,
     "start_time"),
    ("POST", "/v1/models/cleanup", {"keep_days": -1}, None, "keep_days"),
    ("POST", "/v1/train", {"scope": "user"}, None, "user"),
    ("POST", "/v1/train", {"scope": "global", "user": JAZZ}, None, "user"),
    ("POST", "/v1/recommend", {"email": JAZZ, "lat": 52.0}, None, "lat"),
    ("POST", "/v1/recommend", {"email": JAZZ, "start": "18:00"}, None, "start"),
    ("POST", "/v1/recommend", {"email": JAZZ, "start": "18:00", "end": "18:00"}, None, "start"),
    ("POST", "/v1/recommend", {"email": JAZZ, "max_km": 3.0, "filter_distance": 4.0}, None,
     "max_km"),
    ("POST", "/v1/recommend", {"email": JAZZ, "dates": ["2026-12-11"],
                               "selected_dates": ["2026-12-12"]}, None, "dates"),
    ("GET", "/v1/stats/global", None, {"days": 0}, "days"),
])
def test_bad_parameters_are_422_naming_the_field(api: Api, method, path, body, params,
                                                 field) -> None:
    response = api.client.request(method, path, json=body, params=params,
                                  headers=api.headers("all"))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["status"] == 422 and error["field"] == field, error
    assert error["message"]


def test_the_recommendation_queries_are_documented_and_read_like_parameters(api: Api) -> None:
    """The GETs' queries are validated as one model (beacon.api.query): still one documented
    parameter per field with its limits; a repeated name counts with its last value; a name
    the endpoint does not know is ignored."""
    paths = api.client.get("/openapi.json").json()["paths"]
    user = {p["name"]: p for p in paths["/v1/users/{email}/recommendations"]["get"]["parameters"]}
    assert set(user) == {"email", "n", "offset", "lat", "lon", "max_km", "dates", "start", "end",
                         "reject", "category", "strategy", "explain", "known_only"}
    assert user["email"]["in"] == "path"
    assert user["n"]["schema"]["maximum"] == 100 and user["n"]["schema"]["minimum"] == 1
    assert user["start"]["description"] == "daily window start, HH:MM"
    assert user["strategy"]["schema"]["enum"] == ["beacon", "popularity", "content"]
    similar = paths["/v1/events/{event_id}/similar"]["get"]["parameters"]
    assert {p["name"] for p in similar} == set(user) - {"email", "known_only"} | {"event_id"}

    path = f"/v1/users/{JAZZ}/recommendations"
    last = api.client.get(f"{path}?n=1&n=2&surprise=1", headers=api.headers("all"))
    assert last.status_code == 200 and len(last.json()["items"]) == 2


def test_ingest_is_idempotent_and_impressions_are_attributed(api: Api) -> None:
    from data_access.db import session_scope
    from data_access.schema import Interaction
    from sqlalchemy import select

    answer = api.get(f"/v1/users/{JAZZ}/recommendations", params={"n": 3}).json()
    second = answer["items"][1]["event_id"]
    batch = {"interactions": [
        {"id": "imp-1", "email": JAZZ, "event_id": second, "type": "impression",
         "request_id": answer["request_id"], "occurred_at": NOW.isoformat()},
        {"id": "clk-1", "email": JAZZ, "event_id": second, "type": "click"},
    ]}
    first = api.post("/v1/interactions", batch).json()
    assert first["inserted"] == 2 and first["duplicates"] == 0 and first["users_marked"] == 1
    again = api.post("/v1/interactions", batch).json()
    assert again["inserted"] == 0 and again["duplicates"] == 2
    with session_scope() as session:
        rows = session.execute(select(Interaction.type, Interaction.model_version,
                                      Interaction.strategy, Interaction.position)
                               .where(Interaction.idempotency_key.in_(["imp-1", "clk-1"]))
                               .order_by(Interaction.type)).all()
    assert [tuple(r) for r in rows] == [("click", None, None, None),
                                        ("impression", answer["model_version"], "beacon", 2)]
    # one bad item: nothing of the batch is written
    bad = {"interactions": [{"id": "ok-2", "email": JAZZ, "event_id": "jazz-2", "type": "view"},
                            {"id": "bad", "email": JAZZ, "event_id": "ghost", "type": "view"}]}
    assert api.post("/v1/interactions", bad).status_code == 422
    assert api.post("/v1/interactions", {"interactions": bad["interactions"][:1]}).json()[
        "inserted"] == 1
    # an unknown user is created with their email
    made = api.post("/v1/interactions", {"interactions": [
        {"id": "n-1", "email": "newbie@example.com", "event_id": "jazz-2", "type": "click"}]})
    assert made.json()["users_created"] == 1


def test_a_reject_or_registration_counts_on_the_very_next_request(api: Api) -> None:
    path = f"/v1/users/{JAZZ}/recommendations"
    first = api.get(path, params={"n": 3}).json()["items"][0]["event_id"]
    api.post("/v1/interactions", {"interactions": [
        {"id": "rej-1", "email": JAZZ, "event_id": first, "type": "reject"}]})
    after = [i["event_id"] for i in api.get(path, params={"n": 20}).json()["items"]]
    assert first not in after
    api.post("/v1/interactions", {"interactions": [
        {"id": "reg-1", "email": JAZZ, "event_id": after[0], "type": "register"}]})
    assert after[0] not in [i["event_id"] for i in api.get(path, params={"n": 20}).json()["items"]]


def test_a_cancelled_event_is_gone_at_once_in_every_process(api: Api, monkeypatch) -> None:
    from beacon import candidate_snapshot
    from data_access import audit, catalog_sync

    # no time-to-live saves it: only the catalogue stamp can tell this process
    monkeypatch.setattr(candidate_snapshot, "SNAPSHOT_TTL_S", 1e9)
    monkeypatch.setattr(candidate_snapshot, "COUNT_TTL_S", 1e9)
    path = f"/v1/users/{JAZZ}/recommendations"
    created = api.put("/v1/events/jazz-late", {
        "title": "Late jazz", "start_time": (NOW + timedelta(days=2, hours=5)).isoformat(),
        "timezone": "Europe/Berlin", "category": "music", "tags": ["jazz"],
        "latitude": BERLIN[0], "longitude": BERLIN[1]})
    assert created.json() == {"id": "jazz-late", "outcome": "created"}
    assert "jazz-late" in [i["event_id"] for i in api.get(path, params={"n": 50}).json()["items"]]
    assert api.delete("/v1/events/jazz-late").json()["outcome"] == "deleted"
    assert "jazz-late" not in [i["event_id"] for i in api.get(path, params={"n": 50}).json()["items"]]
    assert api.delete("/v1/events/jazz-late").status_code == 404
    outcomes = [row.outcome for row in audit.entries(action="delete_event")]
    assert outcomes == ["failed", "ok"]  # newest first: the delete that found nothing failed
    # a deletion made by another process (the same store call, not this process's cache)
    listed = [i["event_id"] for i in api.get(path, params={"n": 50}).json()["items"]]
    assert catalog_sync.delete_event(listed[0])
    assert listed[0] not in [i["event_id"] for i in api.get(path, params={"n": 50}).json()["items"]]


def test_catalogue_sync_upserts(api: Api) -> None:
    body = {"title": "Swing", "start_time": (NOW + timedelta(days=4)).isoformat(),
            "category": "music", "tags": ["swing"]}
    assert api.put("/v1/events/sw-1", body).json()["outcome"] == "created"
    assert api.put("/v1/events/sw-1", body).json()["outcome"] == "unchanged"
    assert api.put("/v1/events/sw-1", {**body, "title": "Swing!"}).json()["outcome"] == "updated"
    user = {"name": "Ada", "latitude": BERLIN[0], "longitude": BERLIN[1], "interests": ["swing"]}
    assert api.put("/v1/users/ada@example.com", user).json()["outcome"] == "created"
    assert api.put("/v1/users/ada@example.com", user).json()["outcome"] == "unchanged"
    got = api.get("/v1/users/ada@example.com/recommendations").json()
    assert got["known_user"] is True


def test_admin_endpoints(api: Api) -> None:
    from beacon import training

    models = api.get("/v1/models").json()["versions"]
    assert [m["id"] for m in models] == [1] and models[0]["status"] == "active"
    assert api.get("/v1/models/1").json()["hyperparameters"]
    assert api.get("/v1/models/999").status_code == 404
    started = api.post("/v1/train", {"scope": "user", "user": JAZZ})
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    training.wait_for_background(60)
    run = api.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded" and run["scope"] == "user"
    assert api.get("/v1/runs/999").status_code == 404
    assert api.delete(f"/v1/users/{JAZZ}/model").json()["deleted_versions"] == 1
    assert api.delete("/v1/users/ghost@example.com/model").status_code == 404
    assert api.post("/v1/models/1/activate").json()["status"] == "active"
    dry = api.post("/v1/models/cleanup", {"keep_days": 0, "keep_newest": 0, "dry_run": True})
    assert dry.json()["dry_run"] is True
    debug = api.post("/v1/debug/filter", {"email": JAZZ, "max_km": 2.5,
                                          "lat": BERLIN[0], "lon": BERLIN[1]}).json()
    assert [s["name"] for s in debug["stages"]][:2] == ["all candidates", "upcoming"]
    assert {"event_id", "passed", "failed_stage", "reason"} <= set(debug["events"][0])


def test_stats(api: Api) -> None:
    answer = api.get(f"/v1/users/{JAZZ}/recommendations", params={"n": 2}).json()
    event = answer["items"][0]["event_id"]
    api.post("/v1/interactions", {"interactions": [
        {"id": "i1", "email": JAZZ, "event_id": event, "type": "impression",
         "request_id": answer["request_id"]},
        {"id": "c1", "email": JAZZ, "event_id": event, "type": "click"}]})
    mine = api.get(f"/v1/stats/users/{JAZZ}").json()
    assert mine["recommendation_requests"] == 1 and mine["recommendations_served"] == 2
    assert mine["impressions"] == 1 and mine["clicks"] == 1 and mine["ctr"] == 1.0
    assert mine["top_categories"][0]["category"] == "music"
    assert api.get("/v1/stats/users/ghost@example.com").status_code == 404
    overall = api.get("/v1/stats/global", params={"days": 7}).json()
    assert overall["totals"]["impressions"] == 1
    assert [s["strategy"] for s in overall["by_strategy"]] == ["beacon"]
    assert overall["popular_events"][0]["event_id"] == "jazz-0"
    assert len(overall["per_day"]) >= 7


def test_no_text_may_hold_a_nul_character(api: Api) -> None:
    """Postgres cannot store one: it is a 422 naming the field, never a 500."""
    event = {"title": "A\u0000B", "start_time": (NOW + timedelta(days=3)).isoformat()}
    assert api.put("/v1/events/e-1", event).json()["error"]["field"] == "title"
    assert api.get("/v1/users/a%00b/recommendations").json()["error"]["field"] == "email"
    assert api.post("/v1/interactions", {"interactions": [
        {"id": "x\u0000", "email": JAZZ, "event_id": "jazz-1", "type": "click"}]}).json()[
        "error"]["field"] == "interactions[0].id"
    assert api.get(f"/v1/users/{JAZZ}/recommendations",
                   params={"reject": "a\u0000"}).json()["error"]["field"] == "reject"


def test_an_email_in_another_case_is_the_same_user(api: Api) -> None:
    from data_access.catalog import user_by_email

    made = api.post("/v1/interactions", {"interactions": [
        {"id": "case-1", "email": JAZZ.upper(), "event_id": "jazz-2", "type": "click"}]}).json()
    assert made["users_created"] == 0 and made["inserted"] == 1
    # a new user as the platform typed them: created once, stored lowercased
    new = api.post("/v1/interactions", {"interactions": [
        {"id": "case-2", "email": "New.User@Example.org", "event_id": "jazz-2", "type": "click"},
        {"id": "case-3", "email": "new.user@example.ORG", "event_id": "jazz-1", "type": "view"}]})
    assert new.status_code == 200, new.text
    assert new.json()["users_created"] == 1 and new.json()["inserted"] == 2
    assert user_by_email("new.user@example.org") is not None
    put = api.put("/v1/users/Other.One@Example.org", {"name": "O"}).json()
    assert put == {"id": "other.one@example.org", "outcome": "created"}


def test_a_user_whose_id_is_not_an_address_keeps_working(api: Api) -> None:
    """Only a user being created needs an email address: one stored under another id (the
    API once took any id) still reports and syncs."""
    from data_access.db import session_scope
    from data_access.schema import User

    with session_scope() as session:
        session.add(User(email="u-123", name="Legacy"))
    clicked = api.post("/v1/interactions", {"interactions": [
        {"id": "legacy-1", "email": "U-123", "event_id": "jazz-1", "type": "click"}]})
    assert clicked.status_code == 200 and clicked.json()["users_created"] == 0, clicked.text
    assert api.put("/v1/users/u-123", {"name": "Legacy user"}).json()["outcome"] == "updated"
    new = api.put("/v1/users/u-456", {"name": "New"})
    assert new.status_code == 422 and new.json()["error"]["field"] == "email"


def test_an_event_deleted_while_a_batch_is_stored_is_a_422(api: Api) -> None:
    """The batch looked the event up, then a cancellation deleted it before the insert: the
    same 422 as an unknown event (it was a 500 from the foreign key), nothing stored."""
    import threading

    from sqlalchemy import event as sa_event

    from data_access import catalog_sync
    from data_access.db import get_engine

    deleted: list[bool] = []

    def after_the_lookup(conn, cursor, statement, *_args) -> None:
        if not deleted and "FROM events" in statement and "event_id IN" in statement:
            deleted.append(False)
            racer = threading.Thread(target=lambda: deleted.append(
                catalog_sync.delete_event("jazz-3")))
            racer.start()
            racer.join(timeout=5)

    engine = get_engine()
    sa_event.listen(engine, "after_cursor_execute", after_the_lookup)
    try:
        answer = api.post("/v1/interactions", {"interactions": [
            {"id": "race-ok", "email": JAZZ, "event_id": "jazz-2", "type": "click"},
            {"id": "race-gone", "email": "racer@example.org", "event_id": "jazz-3",
             "type": "click"}]})
    finally:
        sa_event.remove(engine, "after_cursor_execute", after_the_lookup)
    assert deleted == [False, True]
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "interactions[1].event_id"
    again = api.post("/v1/interactions", {"interactions": [
        {"id": "race-ok", "email": JAZZ, "event_id": "jazz-2", "type": "click"}]}).json()
    assert again["inserted"] == 1  # nothing of the refused batch was stored


def test_a_batch_that_gives_one_id_twice(api: Api) -> None:
    """The same item twice is one interaction; one id for two different items is refused."""
    item = {"id": "twice", "email": JAZZ, "event_id": "jazz-2", "type": "view",
            "occurred_at": NOW.isoformat()}
    same = api.post("/v1/interactions", {"interactions": [item, dict(item)]}).json()
    assert (same["inserted"], same["duplicates"]) == (1, 1)
    clash = api.post("/v1/interactions", {"interactions": [
        {**item, "id": "clash"}, {**item, "id": "clash", "type": "register"}]})
    assert clash.status_code == 422
    assert clash.json()["error"]["field"] == "interactions[1].id"
    assert "interactions[0]" in clash.json()["error"]["message"]


def test_an_answer_is_credited_only_to_the_user_it_answered(api: Api) -> None:
    answer = api.get(f"/v1/users/{JAZZ}/recommendations", params={"n": 3}).json()
    other = "jazz2@example.com"
    wrong = api.post("/v1/interactions", {"interactions": [
        {"id": "imp-x", "email": other, "event_id": answer["items"][0]["event_id"],
         "type": "impression", "request_id": answer["request_id"]}]})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["field"] == "interactions[0].request_id"
    assert "another user" in wrong.json()["error"]["message"]


def test_an_unknown_event_is_a_404_on_the_similar_events(api: Api) -> None:
    missing = api.get("/v1/events/no-such-event/similar")
    assert missing.status_code == 404
    assert missing.json()["error"]["field"] == "event_id"


def test_use_calendar_filter_false_switches_off_only_selected_dates(api: Api) -> None:
    day = (NOW + timedelta(days=2)).date().isoformat()
    plain = api.post("/v1/recommend", {"email": JAZZ, "n": 50, "dates": [day]}).json()
    mixed = api.post("/v1/recommend", {"email": JAZZ, "n": 50, "dates": [day],
                                       "use_calendar_filter": False}).json()
    assert [i["event_id"] for i in mixed["items"]] == [i["event_id"] for i in plain["items"]]
    assert {i["local_start"][:10] for i in plain["items"]} == {day}
    old = api.post("/v1/recommend", {"email": JAZZ, "n": 50, "selected_dates": [day],
                                     "use_calendar_filter": False}).json()
    assert len(old["items"]) > len(plain["items"])


def test_a_body_that_is_not_json_is_a_400_saying_so(api: Api) -> None:
    for raw in (b'{"email": ', b'{"email": "\xff\xfe"}', b"\xff\xfe"):
        response = api.client.post("/v1/recommend", content=raw, headers={
            **api.headers("all"), "Content-Type": "application/json"})
        assert response.status_code == 400, (raw, response.text)
        message = response.json()["error"]["message"]
        assert message.startswith("malformed request: the body is not valid JSON"), message


def test_a_catalogue_row_written_by_a_concurrent_request_is_not_an_error(api: Api,
                                                                         monkeypatch) -> None:
    """Two requests create the same event at once: the second read no row before the first
    committed, then found it identical. Simulated by hiding the row from that first read."""
    from data_access.imports import ImportWriter

    body = {"title": "Race", "start_time": (NOW + timedelta(days=5)).isoformat(),
            "tags": ["jazz"]}
    assert api.put("/v1/events/race-1", body).json()["outcome"] == "created"
    real = ImportWriter._ids_for
    reads = []

    def first_read_sees_nothing(self, table, key, keys):
        reads.append(keys)
        return {} if len(reads) == 1 else real(self, table, key, keys)

    monkeypatch.setattr(ImportWriter, "_ids_for", first_read_sees_nothing)
    again = api.put("/v1/events/race-1", body)
    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "unchanged"
    # the same race where only the tags differ: an update, and the catalogue stamp moves
    from data_access import catalog_sync

    stamp, reads[:] = catalog_sync.catalog_stamp(), []
    retagged = api.put("/v1/events/race-1", {**body, "tags": ["rock"]})
    assert retagged.json()["outcome"] == "updated"
    assert catalog_sync.catalog_stamp() != stamp
    # the race where the columns differ: the request that lost updated the row, it did not
    # create it (it used to answer "created", like the request that did)
    reads[:] = []
    renamed = api.put("/v1/events/race-1", {**body, "tags": ["rock"], "title": "Race II"})
    assert renamed.json()["outcome"] == "updated"
    reads[:] = []
    user = api.put("/v1/users/racer@example.com", {"name": "Racer"})
    assert user.json()["outcome"] == "created"
    reads[:] = []
    assert api.put("/v1/users/racer@example.com", {"name": "Racer Two"}).json()["outcome"] \
        == "updated"


def test_an_unreachable_database_is_a_json_503(monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from beacon.api.app import IN_PROCESS_WORKER, create_app

    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody:x@127.0.0.1:9/none")
    monkeypatch.setenv(IN_PROCESS_WORKER, "0")
    client = TestClient(create_app(), raise_server_exceptions=False)
    response = client.get(f"/v1/users/{JAZZ}/recommendations", headers={"X-API-Key": "bk_x"})
    assert response.status_code == 401  # a malformed key is refused before any database read
    key = "bk_0123456789_" + "a" * 43
    response = client.get(f"/v1/users/{JAZZ}/recommendations", headers={"X-API-Key": key})
    assert response.status_code == 503
    assert response.json()["error"]["message"].startswith("the database is unavailable")
    ready = client.get("/healthz/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("unreachable")


def test_similar_events_speak_of_the_event_not_of_a_user(api: Api) -> None:
    """Ranked for a stand-in at the event's place with its category and tags as interests:
    the event itself is left out, its own kind leads, and no reason says "your home"."""
    answer = api.get("/v1/events/jazz-1/similar", params={"n": 5}).json()
    ids = [item["event_id"] for item in answer["items"]]
    assert ids and "jazz-1" not in ids
    assert ids[0].startswith("jazz-")
    reasons = [item["reason"] or "" for item in answer["items"]]
    assert not [r for r in reasons if "your home" in r or "your interest" in r], reasons


def test_a_reason_for_a_user_reads_as_one_about_the_event() -> None:
    from beacon.reasons import about_the_event

    assert about_the_event("matches your interest: jazz; near your home (1.2 km)") == \
        "like this event: jazz; near this event (1.2 km)"
    assert about_the_event("suggested from your home area (4 km away)") == \
        "near this event (4 km away)"
    assert about_the_event("near your chosen point (2.0 km)") == "near your chosen point (2.0 km)"
    assert about_the_event(None) is None


def test_an_unexpected_error_is_a_json_500_that_closes_the_connection(monkeypatch) -> None:
    """The server drops the connection after an unhandled error; the answer says so, so a
    client's pool does not send its next request down a closed connection."""
    from fastapi.testclient import TestClient

    from beacon.api.app import IN_PROCESS_WORKER, create_app

    monkeypatch.setenv(IN_PROCESS_WORKER, "0")
    app = create_app()

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/broken", broken)
    response = TestClient(app, raise_server_exceptions=False).get("/v1/broken")
    assert response.status_code == 500
    assert response.headers["connection"] == "close"
    assert response.json()["error"]["message"] == "internal error (logged on the server)"
