"""The console's frame and its Overview, Training, Models and Metrics pages, through AppTest on a
real database (SQLite file, or Postgres with BEACON_TEST_DATABASE_URL): each page renders
without exception, shows the fixture's numbers, and its buttons do what they say."""
from __future__ import annotations

import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from beacon import bootstrap, console, versions
from beacon.demo import load_demo_data
from data_access import catalog, migrate, runs
from tests.auth_support import ADMIN, REPO, actor, shown, signed_in_app
from tests.trained_support import DEMO, tiny_config, two_trained_versions

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard.py"
TIMEOUT = 120  # seconds AppTest may take for one script run (the first imports torch)


def app(page: str | None = None, role: str | None = "admin") -> AppTest:
    """The console from dashboard.py signed in with `role` (None: nobody signed in),
    optionally switched to one page, run once."""
    st.cache_data.clear()
    at = (signed_in_app(role, timeout=TIMEOUT) if role
          else AppTest.from_file(str(DASHBOARD), default_timeout=TIMEOUT))
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.caption]
    parts += [e.value for e in at.error] + [e.value for e in at.info] + [e.value for e in at.warning]
    parts += [e.value for e in at.success]
    return shown("\n".join(str(p) for p in parts))


def run_history(at: AppTest):
    """The Training page's history table (the saved settings may be drawn above it)."""
    return next(d.value for d in at.dataframe if "run" in d.value.columns)


def metric(at: AppTest, label: str) -> str:
    for element in at.metric:
        if element.label == label:
            return element.value
    raise AssertionError(f"no metric {label!r} among {[m.label for m in at.metric]}")


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy; bounded, no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


@pytest.fixture
def seeded(db: str) -> str:
    load_demo_data(**DEMO, actor=ADMIN)
    return db


# --------------------------------------------------------------------------------------------
# The frame

def test_frame_lists_pages_and_describes_database(seeded: str, dialect: str) -> None:
    at = app()
    no_exception(at)
    sidebar = "\n".join(m.value for m in at.sidebar.markdown)
    assert f"**Database** · {dialect}" in sidebar
    assert "beacon:beacon" not in sidebar and "password" not in sidebar.lower()
    assert "**Model** · none active" in sidebar
    assert "**Training** · idle" in sidebar


def test_sidebar_follows_a_running_training(seeded: str) -> None:
    """What the sidebar's training line says of a run as it moves on (its redrawing every few
    seconds, a fragment, is not exercised here: AppTest draws a page once per run)."""
    from data_access import runs

    run = runs.acquire("global", trigger="button").run
    try:
        runs.record_progress(run.id, 7, 30, 0.5, val_metric=0.2, phase="train")
        sidebar = "\n".join(m.value for m in app().sidebar.markdown)
        assert f"run {run.id} · epoch 7/30" in sidebar
        runs.record_progress(run.id, 2, 9, 0.4, phase="refit")
        sidebar = "\n".join(m.value for m in app().sidebar.markdown)
        assert f"run {run.id} · refit 2/9" in sidebar
    finally:
        runs.finish_run(run.id, "cancelled", reason="test")
        runs.release(run.id, "global")


def test_sidebar_status_never_shows_password(seeded: str) -> None:
    status = console.sidebar_status()
    assert set(status.database) == {"dialect", "host", "database"}
    assert all("beacon:beacon" not in str(v) for v in status.database.values())


# --------------------------------------------------------------------------------------------
# Overview

def test_overview_shows_counts_of_the_fixture(seeded: str) -> None:
    at = app()
    no_exception(at)
    assert at.title[0].value == "Overview"
    assert metric(at, "Users") == f"{DEMO['users']:,}"
    expected = catalog.overview_counts(datetime.now(timezone.utc))
    assert metric(at, "Upcoming events") == f"{expected['upcoming_events']:,}"
    assert metric(at, "Interactions, last 7 days") == f"{expected['interactions_7d']:,}"
    assert "No model is active yet" in texts(at)
    comparison = console.overview().ctr
    assert comparison.current is not None  # the demo has impressions in the last 7 days
    assert metric(at, "Click-through rate") == f"{100 * comparison.current:.2f}%"


def test_overview_on_empty_tables_renders(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not the first start (that is the embedded default's job): data without a model or runs.
    load_demo_data(users=1, events=1, days=1, seed=1, actor=ADMIN)
    at = app()
    no_exception(at)
    assert metric(at, "Users") == "1"
    assert "No training has run yet." in texts(at)


# --------------------------------------------------------------------------------------------
# First start

def test_a_printed_command_runs_from_a_fresh_shell(db: str) -> None:
    """The commands the console shows to copy name this interpreter: a bare `python` in a
    shell without the virtual environment lacks Beacon's packages."""
    import shlex
    import subprocess

    from beacon.invocation import beacon_command

    shown = beacon_command("db current --json")
    fresh_shell = {"PATH": "/usr/local/bin:/usr/bin:/bin", "DATABASE_URL": db}
    result = subprocess.run(shlex.split(shown), cwd=REPO, env=fresh_shell,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (shown, result.stderr)


def test_empty_postgres_gets_instructions_never_a_load(db: str, dialect: str) -> None:
    if dialect != "postgresql":
        # On SQLite the same text is what a non-embedded database would get:
        assert "-m beacon demo-data" in bootstrap.needs_data_text(db)
        return
    bootstrap.forget_job(db)
    at = app()
    no_exception(at)
    assert at.title[0].value == "Welcome to Beacon"
    page = texts(at)
    assert "-m beacon import" in page and "-m beacon demo-data" in page
    assert not catalog.all_user_ids(limit=1), "Postgres must never be auto-loaded"


def test_first_start_on_the_embedded_default(dialect: str, request: pytest.FixtureRequest,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A new embedded default: the console creates it, loads demo data and trains a first
    model in the background, shows progress meanwhile, and opens the pages once the model is
    active."""
    if dialect != "sqlite":
        db = request.getfixturevalue("db")
        assert bootstrap.first_start_state(db).kind == "needs_data"
        return
    db = request.getfixturevalue("embedded_default")
    bootstrap.forget_job(db)
    # A small platform and a tiny model, so the test stays short; the path is the real one.
    monkeypatch.setattr(bootstrap, "FIRST_START_DEMO", DEMO)
    monkeypatch.setattr(bootstrap, "FIRST_START_CONFIG", tiny_config())
    # the first request creates the file, its schema and the first administrator, and asks
    # to sign in; nothing is loaded before somebody has signed in
    anonymous = app(role=None)
    no_exception(anonymous)
    assert "Sign in" in [h.value for h in anonymous.subheader]
    at = app()
    no_exception(at)
    assert at.title[0].value == "Welcome to Beacon"
    assert at.get("progress"), "progress is shown while the first start runs"
    state = wait_for(lambda: (s := bootstrap.first_start_state(db)).kind in ("ready", "failed")
                     and s, timeout=300)
    assert state.kind == "ready", state.message
    _wait_run_finished(runs.list_runs()[0].id)
    assert len(catalog.all_user_ids(limit=1000)) == DEMO["users"]
    first_runs = runs.list_runs()
    assert [r.requested_by for r in first_runs] == [bootstrap.FIRST_START_BY]
    assert first_runs[0].status == "succeeded"
    at = app()
    no_exception(at)
    assert at.title[0].value == "Overview"
    assert metric(at, "Users") == f"{DEMO['users']:,}"
    bootstrap.forget_job(db)


def test_database_at_an_old_schema(empty_db: str, dialect: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Postgres behind the code: a page says to run `db upgrade`. The embedded default
    migrates itself on start (and, being empty, begins a first start: keep it tiny)."""
    monkeypatch.setattr(bootstrap, "FIRST_START_DEMO", DEMO)
    monkeypatch.setattr(bootstrap, "FIRST_START_CONFIG", tiny_config())
    migrate.upgrade(empty_db, "0001")
    at = app(role=None)
    no_exception(at)
    if dialect == "postgresql":
        assert "-m beacon db upgrade" in "\n".join(c.value for c in at.code)
        assert migrate.current_revision(empty_db) == "0001"
    else:
        assert migrate.current_revision(empty_db) == migrate.head_revision()


# --------------------------------------------------------------------------------------------
# A trained fixture shared by the read-only tests of one module: demo data and two tiny global
# versions (the second active), so the pages have versions, a loss curve and metrics to draw.

@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    yield from two_trained_versions(tmp_path_factory, "trained")


@pytest.fixture
def on_trained(trained: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("DATABASE_URL", trained["url"])
    return trained


def test_overview_with_a_model(on_trained: dict) -> None:
    at = app()
    no_exception(at)
    newest = on_trained["versions"][1]
    assert metric(at, "Version") == f"v{newest}"
    assert metric(at, "Data fingerprint") in ("current", "stale")
    # the fixture trained with its own settings: "stale" against the defaults, and the help
    # says what a smart retrain would do about it
    assert console.active_model().smart_retrain.startswith(
        "a smart retrain would train now: data or settings changed since the active model")
    sidebar = "\n".join(m.value for m in at.sidebar.markdown)
    assert f"**Model** · v{newest}" in sidebar
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) >= 2  # the two fixture runs


def test_training_page_renders_history_and_defaults(on_trained: dict) -> None:
    at = app("pages/training.py")
    no_exception(at)
    assert at.title[0].value == "Training"
    history = run_history(at)
    assert {"succeeded"} <= set(history["status"])
    assert set(history["who"]) >= {"fixture"}
    from beacon.config import ModelConfig

    dims = [n for n in at.number_input if n.label == "Embedding dimension"]
    assert dims and dims[0].value == ModelConfig().dim
    assert "No training is running." in texts(at)


def test_models_page_shows_versions_and_detail(on_trained: dict) -> None:
    at = app("pages/models.py")
    no_exception(at)
    table = at.dataframe[0].value
    first, second = on_trained["versions"]
    assert list(table["id"])[:2] == [second, first]
    assert dict(zip(table["id"], table["status"]))[second] == "active"
    assert any(f"Version {second} · global · active" in s.value for s in at.subheader)
    assert at.get("plotly_chart"), "the loss curve is drawn"
    # what the components chose, as the version stored it
    from beacon import versions
    from beacon.components_view import component_rows

    shown = next(d.value for d in at.dataframe if "chose" in d.value.columns)
    expected = component_rows(versions.show(second).components)
    assert len(expected) == 3
    assert shown.to_dict("records") == expected


def test_models_page_says_why_a_version_has_no_components(on_trained: dict) -> None:
    """A version stored before the components' choices were kept, and a personal version,
    each say why instead of an empty table."""
    from data_access import models_store

    second = on_trained["versions"][1]
    old = models_store.insert_version(scope="global", blob=b"-", fingerprint="f",
                                      created_by="test")
    personal = models_store.insert_version(
        scope="user", user_id=catalog.all_user_ids(limit=1)[0][0], base_model_id=second,
        blob=b"-", created_by="test")
    try:
        at = _select_version(app("pages/models.py"), old)
        no_exception(at)
        assert "Not recorded: this version was trained before the components' choices were " \
               "kept." in [c.value for c in at.caption]
        assert not any("chose" in d.value.columns for d in at.dataframe)
        detail = console.version_detail(personal)
        assert detail.components == []
        assert detail.components_note == (f"a personal version: it adds one user's vector to "
                                          f"global version {second}, whose components it uses")
    finally:
        models_store.delete_versions([old, personal])


def _version_with_curve(settings: dict, loss_history: list[dict]) -> int:
    """A stored global version with these settings and this loss history (no real weights)."""
    from data_access import models_store

    return models_store.insert_version(scope="global", blob=b"-", fingerprint="f",
                                       hyperparameters=settings, loss_history=loss_history,
                                       created_by="test")


def test_models_page_warns_when_the_epoch_cap_ended_a_fit(on_trained: dict) -> None:
    """A version whose validation curve still rose when training reached its epoch cap is
    flagged under its loss curve; one that early stopping ended is not."""
    from beacon.config import ModelConfig
    from data_access import models_store

    settings = ModelConfig(epochs=4, patience=3).to_dict()
    rising = [{"epoch": e, "phase": "train", "loss": 1.0 / e, "val_metric": 0.1 * e}
              for e in range(1, 5)]
    stopped = [{"epoch": e, "phase": "train", "loss": 1.0 / e, "val_metric": v}
               for e, v in enumerate([0.1, 0.3, 0.2, 0.2, 0.2], start=1)]
    capped = _version_with_curve(settings, rising)
    ended = _version_with_curve({**settings, "epochs": 30}, stopped)
    try:
        at = _select_version(app("pages/models.py"), capped)
        no_exception(at)
        assert [w.value for w in at.warning] == [
            "Training reached its cap of 4 epochs before early stopping ended it (validation "
            "NDCG@10 best at epoch 4): the model is likely under-trained. Raise epochs, or "
            "learning_rate on a large, sparse catalog."]
        at = _select_version(at, ended)
        no_exception(at)
        assert not at.warning
        assert console.version_detail(ended).convergence_note == ""
        # the Training page's outcome of the run that made each version says the same
        from data_access import runs

        outcomes = {}
        for version in (capped, ended):
            run = runs.create_run("global", trigger="button", status="running")
            runs.finish_run(run.id, "succeeded", reason="forced", model_id=version)
            outcomes[version] = console.run_outcome(run.id)
        assert outcomes[capped].kind == "warning"
        assert outcomes[capped].text.endswith(
            "(forced). Warning: training reached its cap of 4 epochs before early stopping "
            "ended it (validation NDCG@10 best at epoch 4): the model is likely under-trained. "
            "Raise epochs, or learning_rate on a large, sparse catalog.")
        assert outcomes[ended].kind == "success" and "Warning" not in outcomes[ended].text
    finally:
        models_store.delete_versions([capped, ended])


def test_models_page_says_what_a_retry_at_a_higher_learning_rate_reached(on_trained: dict) -> None:
    """A fit that reached its cap tried again at a higher rate: the page names both runs and
    the one kept, beside the loss chart; the kept run converged, so there is no warning."""
    from beacon.config import ModelConfig
    from data_access import models_store

    settings = ModelConfig(epochs=4, patience=1).to_dict()
    first = [{"epoch": e, "phase": "discarded", "loss": 1.0 / e, "val_metric": 0.1 * e,
              "learning_rate": 0.005} for e in range(1, 5)]
    retry = [{"epoch": e, "phase": "train", "loss": 1.0 / e, "val_metric": v,
              "learning_rate": 0.02} for e, v in enumerate([0.3, 0.5, 0.45], start=1)]
    refit = [{"epoch": e, "phase": "refit", "loss": 1.0 / e, "val_metric": None}
             for e in (1, 2)]
    version = _version_with_curve(settings, first + retry + refit)
    try:
        at = _select_version(app("pages/models.py"), version)
        no_exception(at)
        assert [i.value for i in at.info] == [
            "The first run, at learning rate 0.005, reached the cap of 4 epochs still improving "
            "(validation NDCG@10 0.4000 at epoch 4); a second run at 0.02 reached 0.5000 at "
            "epoch 2 and is the one kept."]
        assert not at.warning
    finally:
        models_store.delete_versions([version])


def test_models_activate_needs_confirmation_then_switches(on_trained: dict) -> None:
    from beacon import versions

    first, second = on_trained["versions"]
    at = app("pages/models.py")
    # select the older version in the table, then ask to activate it
    at = _select_version(at, first)
    button = next(b for b in at.button if b.label == f"Activate v{first} (rollback)")
    button.click().run()
    no_exception(at)
    assert versions.show(second).status == "active", "nothing happens before the confirmation"
    next(b for b in at.button if b.label == f"Yes, activate v{first}").click().run()
    no_exception(at)
    try:
        assert versions.show(first).status == "active"
        assert versions.show(second).status == "inactive"
        assert f"Version {first} is now active." in texts(at)
    finally:
        versions.activate(second, actor=actor("test"))


def _select_version(at: AppTest, version_id: int) -> AppTest:
    return at.selectbox(key="version_pick").set_value(version_id).run()


def test_an_open_confirmation_learns_what_another_operator_did(on_trained: dict) -> None:
    """An activation waiting for "Yes" while another operator activates that version, or
    cleans it up: the page says what happened instead of nothing."""
    from data_access import models_store

    first, second = on_trained["versions"]
    try:
        at = _select_version(app("pages/models.py"), first)
        at.button(key="activate").click().run()
        assert any(f"Activate version {first}?" in w.value for w in at.warning)
        versions.activate(first, actor=actor("other-admin@example.org"))
        at.run()
        no_exception(at)
        assert f"Version {first} became active elsewhere" in texts(at)
        assert not any(b.key == "activate_yes" for b in at.button)
    finally:
        versions.activate(second, actor=ADMIN)
    spare = models_store.insert_version(scope="global", blob=b"-", fingerprint="f",
                                        created_by="test")
    try:
        at = _select_version(app("pages/models.py"), spare)
        at.button(key="activate").click().run()
        models_store.delete_versions([spare])
        at.run()
        no_exception(at)
        assert f"Version {spare} was deleted (a clean-up) while its activation waited" \
            in texts(at)
    finally:
        models_store.delete_versions([spare])


def test_models_compare_and_cleanup_preview(on_trained: dict) -> None:
    first, second = on_trained["versions"]
    comparison = console.compare_versions(first, second, sample=10)
    assert comparison.sample_size == 10
    assert all(0.0 <= row["overlap"] <= 1.0 for row in comparison.overlap)
    assert {row["version"] for row in comparison.scores} == {f"v{first}", f"v{second}"}
    at = app("pages/models.py")
    next(b for b in at.button if b.label == "Compare").click().run()
    no_exception(at)
    assert any(m.label == "Mean top-10 overlap" for m in at.metric)
    side_by_side = next(d.value for d in at.dataframe if f"v{first}" in d.value.columns
                        and "component" in d.value.columns)
    assert side_by_side.to_dict("records") == comparison.components
    assert len(comparison.components) == 3
    # the fixture's two versions differ only in their seed
    assert comparison.settings == [{"setting": "seed", f"v{first}": "42", f"v{second}": "7"}]
    settings = next(d.value for d in at.dataframe if "setting" in d.value.columns
                    and f"v{first}" in d.value.columns)
    assert settings.to_dict("records") == comparison.settings
    # keep nothing by age and only the newest: the older version is what would go
    [d for d in at.number_input if d.label.startswith("Keep versions")][0].set_value(0.0)
    [n for n in at.number_input if n.label == "Always keep the newest"][0].set_value(1)
    next(b for b in at.button if b.label == "Preview").click().run()
    no_exception(at)
    preview = console.cleanup_preview(0.0, 1)
    assert [row["id"] for row in preview] == [first]
    assert any(b.label == "Delete these 1 versions" for b in at.button)
    from beacon import versions

    assert versions.show(first).status == "inactive", "a preview deletes nothing"


def test_metrics_page_draws_every_breakdown(on_trained: dict) -> None:
    at = app("pages/metrics.py")
    no_exception(at)
    assert at.title[0].value == "Metrics"
    first, last = console.default_range(days=30)
    start, end = console.range_bounds(first, last)
    from beacon.metrics import online_metrics

    expected = online_metrics(start=start, end=end).totals
    assert metric(at, "Impressions") == f"{expected['impressions']:,}"
    assert metric(at, "Clicks") == f"{expected['clicks']:,}"
    assert len(at.get("plotly_chart")) == 6
    at.segmented_control(key="metrics_rate").set_value("Conversion").run()
    no_exception(at)


def test_metrics_page_on_a_range_without_impressions(on_trained: dict) -> None:
    at = app("pages/metrics.py")
    at.date_input(key="metrics_range").set_value((date(2001, 1, 1), date(2001, 1, 31))).run()
    no_exception(at)
    assert metric(at, "Impressions") == "0"
    assert "No impressions in this range (2001-01-01 to 2001-01-31" in texts(at)
    assert len(at.get("plotly_chart")) == 0, "no empty axes: the message says why"


# --------------------------------------------------------------------------------------------
# Buttons that start background work (function-scoped databases: they change state)

@pytest.fixture
def seeded_with_model(seeded: str) -> str:
    from beacon.training import train

    assert train(force=True, config=tiny_config(), actor=actor("fixture")).status == "trained"
    return seeded


def _wait_run_finished(run_id: int) -> runs.RunInfo:
    """The run row final, and this process's worker done with it: a worker still finishing
    when the next test points DATABASE_URL elsewhere would write into that test's database."""
    from beacon import training

    run = wait_for(lambda: (r := runs.get_run(run_id)) is not None
                   and r.status in runs.FINAL_STATUSES and r, timeout=300)
    training.background_result(run_id, timeout=300)
    return run


@pytest.fixture
def tiny_buttons(seeded_with_model: str) -> str:
    """The fixture's tiny settings saved, as an administrator would: the retrain buttons train
    with them (the defaults take longer), and the fixture's model, trained with them, is
    current."""
    from beacon import training_settings

    training_settings.save_training_settings(tiny_config().to_dict(), actor=actor())
    return seeded_with_model


def _click_and_get_new_run(label: str) -> tuple[AppTest, list[runs.RunInfo]]:
    """The Training page, `label` clicked: the page and the runs that click created."""
    before = {r.id for r in runs.list_runs()}
    at = app("pages/training.py")
    next(b for b in at.button if b.label == label).click().run()
    no_exception(at)
    return at, [r for r in runs.list_runs() if r.id not in before]


def test_force_retrain_button_starts_a_background_run_that_finishes(tiny_buttons: str) -> None:
    at, new = _click_and_get_new_run("Force retrain")
    assert len(new) == 1 and new[0].trigger == "force" and new[0].requested_by == "admin@example.org"
    finished = _wait_run_finished(new[0].id)
    assert finished.status == "succeeded", finished.error
    assert finished.progress, "epochs were recorded on the run row"
    at = app("pages/training.py")
    no_exception(at)
    assert run_history(at)["run"].iloc[0] == new[0].id


def test_busy_when_a_training_holds_the_lock(seeded_with_model: str) -> None:
    held = runs.acquire("global", trigger="cli", requested_by="someone else")
    try:
        result = console.start_retrain(actor=actor("console"))
        assert result.busy and "someone else" in result.message
        at = app("pages/training.py")
        no_exception(at)
        assert f"Run {held.run.id}" in "\n".join(p.proto.text for p in at.get("progress"))
        # (AppTest drops the sidebar of a page with a run_every fragment: check it on Overview)
        sidebar = "\n".join(m.value for m in app().sidebar.markdown)
        assert f"run {held.run.id}" in sidebar, "the frame shows the running training"
        next(b for b in at.button if b.label == "Smart retrain").click().run()
        assert "Busy:" in texts(at)
    finally:
        runs.finish_run(held.run.id, "failed", error="test")
        runs.release(held.run.id, "global")


def test_smart_retrain_that_skips_says_why(tiny_buttons: str) -> None:
    """Nothing changed since the fixture's model: the run skips at once. The page shows that
    outcome and its reason (the 'started' notice used to vanish when the run ended before the
    page's own rerun), and the history shows no epochs for it."""
    at, new = _click_and_get_new_run("Smart retrain")
    assert len(new) == 1
    finished = _wait_run_finished(new[0].id)
    assert finished.status == "skipped", finished
    at.run()  # what the polling fragment does once the run is final
    no_exception(at)
    warning = shown("\n".join(w.value for w in at.warning))
    assert f"Run {finished.id} (smart retrain) skipped: {finished.reason}" in warning
    history = run_history(at)
    assert history.loc[history["run"] == finished.id, "epoch"].tolist() == [""]


def test_user_retrain_with_unknown_email_shows_error(seeded_with_model: str) -> None:
    at = app("pages/training.py")
    at.text_input[0].input("nobody@nowhere.example")
    next(b for b in at.button if b.label == "Retrain user").click().run()
    no_exception(at)
    assert "unknown user" in shown("\n".join(e.value for e in at.error))


def test_a_cancelled_or_failed_run_says_once_that_the_active_model_stays(seeded: str) -> None:
    from data_access import runs

    cancelled = runs.create_run("global", trigger="force", status="running")
    runs.finish_run(cancelled.id, "cancelled",
                    reason="cancelled by op@example.org; the active model is unchanged")
    failed = runs.create_run("global", trigger="button", status="running")
    # the stored traceback of a database error ends on SQLAlchemy's link, not on what happened
    runs.finish_run(failed.id, "failed", reason="cannot use the database: deadlock detected",
                    error="Traceback (most recent call last):\npsycopg.errors.DeadlockDetected: "
                          "deadlock detected\n(Background on this error at: https://sqlalche.me)")
    abandoned = runs.create_run("global", trigger="cli", status="running")
    runs.finish_run(abandoned.id, "abandoned", reason="forced",
                    error="abandoned: its process 4242 on host-a is gone")
    assert console.run_outcome(cancelled.id).text == (
        f"Run {cancelled.id} (forced retrain) cancelled: cancelled by op@example.org; the "
        "active model is unchanged.")
    assert console.run_outcome(failed.id).text == (
        f"Run {failed.id} (smart retrain) failed: cannot use the database: deadlock detected. "
        "The active model is unchanged.")
    assert console.run_outcome(abandoned.id).text == (
        f"Run {abandoned.id} (cli retrain) abandoned: its process 4242 on host-a is "
        "gone. The active model is unchanged.")


def test_user_retrain_without_an_email_starts_nothing(seeded_with_model: str) -> None:
    """An empty box under "Retrain user" once started a global smart retrain."""
    from data_access import runs

    before = [run.id for run in runs.list_runs()]
    at = app("pages/training.py")
    next(b for b in at.button if b.label == "Retrain user").click().run()
    no_exception(at)
    assert "enter the email of the user" in shown("\n".join(e.value for e in at.error))
    assert [run.id for run in runs.list_runs()] == before


def test_a_version_trained_elsewhere_shows_at_once(seeded_with_model: str) -> None:
    """The Models page and the sidebar cache what they read, keyed on the versions' stamp: a
    version trained by another process (or the Training page) is listed on the next run, not
    after a ttl (the rollback browser test picked a stale list once)."""
    from beacon.training import train

    at = app("pages/models.py")
    shown = next(s.value for s in at.subheader if s.value.startswith("Version "))
    assert shown.endswith("· global · active")
    newer = train(force=True, config=tiny_config().with_overrides(seed=3), actor=actor("other"))
    assert newer.status == "trained"
    at.run()
    no_exception(at)
    # the operator's selection stays; what is said about it and the list are current
    assert shown.replace("active", "inactive") in {s.value for s in at.subheader}
    picker = next(b for b in at.selectbox if b.label == "Version")
    assert newer.model_version in picker.options or str(newer.model_version) in picker.options \
        or any(o.startswith(f"v{newer.model_version} ·") for o in picker.options)


def test_versions_stamp_changes_with_every_change_the_console_shows(seeded_with_model: str) -> None:
    """The key of the Models list and the sidebar: a new version, an activation (rollback) and
    a failed mark each change it; nothing else does."""
    from beacon import versions
    from beacon.training import train
    from data_access import models_store

    first = console.versions_stamp()
    assert console.versions_stamp() == first
    newer = train(force=True, config=tiny_config().with_overrides(seed=3), actor=actor("other"))
    trained = console.versions_stamp()
    assert trained != first
    older = next(v for v in versions.list_versions(scope="global") if v.id != newer.model_version)
    versions.activate(older.id, actor=actor("test"))
    rolled_back = console.versions_stamp()
    assert rolled_back != trained
    models_store.mark_failed(newer.model_version, "test")
    assert console.versions_stamp() != rolled_back


def test_hyperparameter_form_names_a_bad_value_and_starts_nothing(seeded_with_model: str) -> None:
    at = app("pages/training.py")
    next(n for n in at.number_input if n.label == "Embedding dimension").set_value(0)
    before = {r.id for r in runs.list_runs()}
    next(b for b in at.button if b.label == "Train with these settings").click().run()
    no_exception(at)
    assert "bad value for model setting dim: 0" in shown("\n".join(e.value for e in at.error))
    assert {r.id for r in runs.list_runs()} == before
    from data_access import audit

    [row] = audit.entries(action="start_training")  # refused by the action: on the record
    assert row.outcome == "failed" and "dim: 0" in row.error


def test_hyperparameter_form_trains_with_those_settings(seeded_with_model: str) -> None:
    at = app("pages/training.py")
    settings = {"Embedding dimension": 6, "Epochs (maximum)": 2, "Batch size": 256,
                "Negatives per positive": 4, "Early-stopping patience": 1}
    for label, value in settings.items():
        next(n for n in at.number_input if n.label == label).set_value(value)
    before = {r.id for r in runs.list_runs()}
    next(b for b in at.button if b.label == "Train with these settings").click().run()
    no_exception(at)
    new = [r for r in runs.list_runs() if r.id not in before]
    assert len(new) == 1
    assert new[0].hyperparameters["dim"] == 6 and new[0].hyperparameters["epochs"] == 2
    finished = _wait_run_finished(new[0].id)
    assert finished.status == "succeeded", finished.error
    assert finished.total_epochs is not None and finished.total_epochs <= 2


def test_an_administrator_saves_settings_for_every_retrain_and_clears_them(
        seeded_with_model: str) -> None:
    from beacon import training_settings

    at = app("pages/training.py")
    assert "Nothing is saved" in texts(at)
    next(n for n in at.number_input if n.label == "Epochs (maximum)").set_value(7)
    before = {r.id for r in runs.list_runs()}
    next(b for b in at.button if b.label == "Save for every retrain").click().run()
    no_exception(at)
    assert training_settings.saved().overrides == {"epochs": 7}
    assert {r.id for r in runs.list_runs()} == before  # saving trains nothing
    assert "Saved: smart retrains train with these settings" in texts(at)
    assert "Saved by admin@example.org" in texts(at)
    # the form now starts from the saved settings
    assert next(n for n in at.number_input if n.label == "Epochs (maximum)").value == 7
    next(b for b in at.button if b.label == "Back to the built-in defaults").click().run()
    no_exception(at)
    assert training_settings.saved().overrides == {}
    assert "Nothing is saved" in texts(at)


def test_a_version_says_where_its_settings_differ_from_the_saved_ones(
        seeded_with_model: str) -> None:
    from beacon import training_settings, versions

    [version] = versions.list_versions(scope="global")
    assert console.version_detail(version.id).settings_vs_saved == [
        {"setting": name, "this version": str(value), "smart retrains now": str(default)}
        for name, value, default in (("batch_size", 256, 1024), ("device", "cpu", "auto"),
                                     ("dim", 8, 32), ("epochs", 3, 30), ("negatives", 4, 32),
                                     ("patience", 1, 3), ("refit", False, True))]
    training_settings.save_training_settings(tiny_config().to_dict(), actor=actor())
    assert console.version_detail(version.id).settings_vs_saved == []


def test_an_operator_trains_with_settings_but_saves_none(seeded_with_model: str) -> None:
    from beacon import training_settings

    training_settings.save_training_settings({"epochs": 7}, actor=actor())
    at = app("pages/training.py", role="operator")
    no_exception(at)
    labels = {b.label for b in at.button}
    assert "Train with these settings" in labels
    assert not labels & {"Save for every retrain", "Back to the built-in defaults"}, labels
    assert "Saved by admin@example.org" in texts(at)
    assert next(n for n in at.number_input if n.label == "Epochs (maximum)").value == 7


def test_settings_this_beacon_cannot_read_leave_the_console_open_and_say_so(
        seeded_with_model: str) -> None:
    """A setting an upgrade retired: every page still opens; Overview and the Training page
    say that smart retrains fail and how to fix it; the way back works from the page."""
    from beacon import training_settings
    from data_access import training_settings as store

    store.change(lambda _: {"retired_setting": 1}, by="an older beacon")
    overview = app()
    no_exception(overview)
    state = next(m for m in overview.metric if m.label == "Data fingerprint")
    assert state.value == "unknown"
    assert "a smart retrain would fail: the saved training settings" in shown(state.help)
    at = app("pages/training.py")
    no_exception(at)
    errors = shown("\n".join(e.value for e in at.error))
    assert "saved training settings do not suit this version" in errors
    assert "training-settings reset" in errors
    next(b for b in at.button if b.label == "Back to the built-in defaults").click().run()
    no_exception(at)
    assert training_settings.saved().overrides == {} and not at.error


# --------------------------------------------------------------------------------------------
# Shared drawing helpers

def _map_script() -> None:
    import pandas as pd

    from pages import _ui

    points = pd.DataFrame({"lat": [52.52, 52.50], "lon": [13.40, 13.45], "label": ["a", "b"]})
    _ui.point_map(points, circles=[{"lat": 52.51, "lon": 13.42, "radius_km": 5, "label": "5 km"}])


def test_point_map_has_no_base_map() -> None:
    """Points and a distance circle drawn with no tiles to fetch (works offline)."""
    import json

    at = AppTest.from_function(_map_script, default_timeout=TIMEOUT).run()
    no_exception(at)
    deck = json.loads(at.get("deck_gl_json_chart")[0].proto.json)
    assert not deck.get("mapStyle") and not deck.get("mapProvider")
    assert [layer["@@type"] for layer in deck["layers"]] == ["ScatterplotLayer"] * 2


def test_unreachable_database_gets_a_clear_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL",
                       "postgresql+psycopg://nobody:secret@127.0.0.1:9/nowhere?connect_timeout=2")
    at = app(role=None)
    no_exception(at)
    page = texts(at) + "\n".join(t.value for t in at.text)  # the error itself is plain text
    assert "cannot be used" in page and "nowhere" in page
    assert "secret" not in page, "never the password"


def test_live_run_says_which_pass_it_is_in() -> None:
    """Early stopping trains with validation, then refits on all data: the counter restarts,
    and the live panel must say why instead of 'epoch 1 of 4' after 'epoch 7 of 30'."""
    from beacon.console import LiveRun

    def live(progress: list, epoch: int, total: int) -> LiveRun:
        return LiveRun(id=1, status="running", scope="global", trigger="force",
                       requested_by="x", epoch=epoch, total_epochs=total, last_loss=1.0,
                       progress=progress, started_at=None, reason=None)

    validated = [{"epoch": e, "loss": 1.0, "val_metric": 0.2, "phase": "train"} for e in (1, 2, 3)]
    refit = [{"epoch": 1, "loss": 1.0, "val_metric": None, "phase": "refit"}]
    plain = [{"epoch": 1, "loss": 1.0, "val_metric": None, "phase": "train"}]
    assert live(validated, 3, 30).epoch_text == "epoch 3 of 30 at most (early stopping)"
    # early stopping that ran to its cap: the evaluation follows, which the text says
    assert live(validated, 30, 30).epoch_text == (
        "epoch 30 of 30 at most (early stopping); evaluating and storing the new version")
    assert live(validated + refit, 1, 2).epoch_text == \
        "refit on all data, epoch 1 of 2 (after 3 epochs with validation)"
    assert live(plain, 1, 5).epoch_text == "epoch 1 of 5"
    # after the last epoch the run evaluates and stores: said, not a stall at "2 of 2"
    assert live(validated + refit, 2, 2).epoch_text.endswith(
        "(after 3 epochs with validation); evaluating and storing the new version")
    assert live(plain, 5, 5).epoch_text == "epoch 5 of 5; evaluating and storing the new version"
    assert live([], 0, 0).epoch_text == "running"
    assert live(validated, 3, 30).short_progress == "epoch 3/30"
    assert live(validated + refit, 1, 2).short_progress == "refit 1/2"
    assert live([], 0, 0).short_progress == ""
    retry = [{"epoch": 1, "loss": 1.0, "val_metric": 0.3, "phase": "retry"}]
    assert live(validated + retry, 1, 30).epoch_text == (
        "epoch 1 of 30 at most, at a higher learning rate (the first run reached its cap "
        "still improving)")


def test_the_first_start_says_which_pass_the_first_training_is_in(db: str) -> None:
    from beacon import bootstrap
    from data_access import runs

    run = runs.acquire("global", trigger="cli").run
    try:
        runs.record_progress(run.id, 12, 30, 0.5, val_metric=0.2, phase="train")
        state = bootstrap._training_state(runs.get_run(run.id))
        assert state.message == \
            "Training the first model: epoch 12 of 30 at most (early stopping)…"
        runs.record_progress(run.id, 3, 10, 0.4, phase="refit")
        assert "refit on all data, epoch 3 of 10 (after 1 epochs with validation)" in \
            bootstrap._training_state(runs.get_run(run.id)).message
    finally:
        runs.finish_run(run.id, "cancelled", reason="test")
        runs.release(run.id, "global")


def test_a_loss_chart_names_each_run_of_a_fit() -> None:
    """A retried fit's history holds the discarded run, the kept one and the refit: each is a
    line of its own, named, with its own validation line."""
    from pages import _ui

    def run(phase: str, epochs: int, metric: float | None) -> list[dict]:
        return [{"epoch": e, "loss": 1.0 / e, "val_metric": metric, "phase": phase}
                for e in range(1, epochs + 1)]

    figure = _ui.loss_figure(run("discarded", 4, 0.1) + run("train", 3, 0.3)
                             + run("refit", 2, None))
    assert [trace.name for trace in figure.data] == [
        "loss, discarded run", "validation, discarded run", "loss", "validation metric",
        "loss, refit on all data"]
    plain = _ui.loss_figure([{"epoch": 1, "loss": 1.0, "val_metric": None},
                             {"epoch": 1, "loss": 0.5, "val_metric": None}])
    assert [trace.name for trace in plain.data] == ["loss", "loss, refit on all data"]
