"""The console in a real browser: `streamlit run dashboard.py` on a seeded database, driven by
Debian's chromium through Playwright. Every page in the sidebar renders without an exception
and shows its content; a retrain started from the Training page is watched to the end; a
rollback on the Models page goes through its confirmation. Screenshots land in /tmp."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from beacon.demo import load_demo_data
from data_access import migrate, runs
from tests.browser_support import (
    CHROMIUM_ARGS,
    SHOTS,
    Console,
    chromium_path,
    running_console,
    wait_idle,
)

pytestmark = pytest.mark.browser

# Each page and a text its main area shows once its content is there.
EXPECTED = {
    "Overview": "Active model",
    "Users": "Users",
    "Recommendations": "Recommendations",
    "Debug filter": "Debug filter",
    "Training": "History",
    "Models": "Compare two versions",
    "Metrics": "Funnel",
}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A console process on a database with demo data and one tiny trained model."""
    from beacon.config import ModelConfig
    from beacon.training import train
    from tests.conftest import _empty_database

    config = ModelConfig(dim=8, epochs=3, batch_size=256, negatives=4, patience=1,
                         refit=False, device="cpu")
    work = tmp_path_factory.mktemp("browser")
    with pytest.MonkeyPatch.context() as patch:
        for url in _empty_database(work):
            patch.setenv("DATABASE_URL", url)
            migrate.upgrade(url)
            load_demo_data(users=80, events=50, days=21, seed=5)
            for seed in (1, 2):
                result = train(force=True, config=config.with_overrides(seed=seed),
                               requested_by="fixture")
                assert result.status == "trained", result
            with running_console(url, work) as running:
                yield running


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = chromium_path()
    if executable is None:
        pytest.fail("chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser, console: Console):
    context = browser.new_context(viewport={"width": 1440, "height": 2200})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    tab.goto(console.url)
    wait_idle(tab)
    yield tab
    context.close()


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _no_exception(page, where: str) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, f"{where}: {errors.first.inner_text()}"


def _open(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]',
                 has_text=title).first.click()
    page.locator('[data-testid="stMain"] h1').filter(
        has_text=re.compile(rf"^\s*{re.escape(title)}\s*$")).first.wait_for()
    wait_idle(page)


def test_every_page_in_the_sidebar_renders(page, console: Console) -> None:
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("Active model", exact=True).wait_for()
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "Database" in sidebar.inner_text()
    assert "beacon:beacon" not in sidebar.inner_text()
    links = page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
    expect(links).to_have_count(len(EXPECTED))
    # a link's text is its Material icon's name, then the title
    titles = [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts()]
    assert titles[0] == "Overview" and {"Training", "Models", "Metrics"} <= set(titles)
    for title in titles:
        _open(page, title)
        expected = EXPECTED.get(title, title)
        main.get_by_text(expected).first.wait_for()
        wait_idle(page)
        if title in ("Overview", "Training", "Models", "Metrics"):
            page.locator('[data-testid="stPlotlyChart"], [data-testid="stDataFrame"]').first.wait_for()
        _no_exception(page, title)
        _shot(page, title.lower().replace(" ", "_"))


def test_retrain_is_watched_to_the_end(page, console: Console) -> None:
    """Force retrain: the run appears in the live panel at once (read from the runs table by
    the polling fragment), and the panel goes back to idle when the run row is final."""
    _open(page, "Training")
    main = page.locator('[data-testid="stMain"]')
    main.get_by_role("button", name=re.compile("Force retrain")).click()
    started = main.get_by_text(re.compile(r"Started forced retrain: run \d+"))
    started.wait_for()
    run_id = int(re.search(r"run (\d+)", started.inner_text()).group(1))
    run = runs.get_run(run_id)
    assert run is not None and run.trigger == "force" and run.requested_by == "console"
    live = main.get_by_text(re.compile(rf"Run {run_id} \(force by console\): epoch [1-9]\d* of \d+"))
    try:
        live.wait_for(timeout=60_000)
        main.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=10_000)
        _shot(page, "training_running")
    except PlaywrightTimeout:  # a run this small may be over before the first epoch shows
        assert runs.get_run(run_id).status in runs.FINAL_STATUSES
    # the fragment polls every 2 s while a run is live; a finished run reruns the whole page
    main.get_by_text("No training is running.").wait_for(timeout=300_000)
    wait_idle(page)
    final = runs.get_run(run_id)
    assert final.status == "succeeded", (final.status, final.reason, final.error)
    assert final.progress, "epochs were recorded on the run row"
    _no_exception(page, "Training after the run")
    _shot(page, "training_done")


def test_rollback_goes_through_confirmation(page, console: Console) -> None:
    from beacon import versions

    _open(page, "Models")
    main = page.locator('[data-testid="stMain"]')
    listed = versions.list_versions(scope="global")
    active = next(v for v in listed if v.status == "active")
    older = next(v for v in listed if v.status == "inactive")
    main.get_by_text(re.compile(r"Version \d+ · global · active")).wait_for()
    # pick the older version in the selectbox
    main.get_by_role("combobox", name=re.compile("Version")).first.click()
    page.get_by_role("option", name=re.compile(rf"^v{older.id} · global")).click()
    main.get_by_text(f"Version {older.id} · global · inactive").wait_for()
    wait_idle(page)
    main.get_by_role("button", name=f"Activate v{older.id} (rollback)").click()
    confirm = main.get_by_role("button", name=f"Yes, activate v{older.id}")
    confirm.wait_for()
    assert versions.show(active.id).status == "active", "nothing changes before confirming"
    _shot(page, "models_confirm")
    confirm.click()
    main.get_by_text(f"Version {older.id} is now active.").wait_for()
    wait_idle(page)
    _no_exception(page, "Models after activate")
    _shot(page, "models_after_rollback")
    try:
        assert versions.show(older.id).status == "active"
        expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(f"v{older.id}")
    finally:
        versions.activate(active.id, requested_by="test")


def test_compare_and_cleanup_preview(page, console: Console) -> None:
    from beacon import versions

    _open(page, "Models")
    main = page.locator('[data-testid="stMain"]')
    main.get_by_role("button", name=re.compile("Compare")).click()
    main.get_by_text("Mean top-10 overlap").wait_for(timeout=120_000)
    wait_idle(page)
    main.get_by_text("Scores of each version's top 10").wait_for()
    before = [v.id for v in versions.list_versions()]
    main.get_by_role("button", name=re.compile("Preview")).click()
    main.get_by_text(re.compile(r"(would be deleted|Nothing to delete)")).wait_for()
    wait_idle(page)
    _no_exception(page, "Models after compare and preview")
    _shot(page, "models_compare_cleanup")
    assert [v.id for v in versions.list_versions()] == before, "a preview deletes nothing"


def test_a_deep_link_as_first_request_gets_the_frame(browser, console: Console,
                                                      tmp_path: Path) -> None:
    """A fresh server whose first request is /debug_filter?user=... must still run the router:
    the sidebar shows the seven pages (not the files in pages/) and the page keeps its user."""
    from sqlalchemy import text

    from data_access.db import get_engine

    with get_engine(console.database_url).connect() as connection:
        email = connection.execute(text("SELECT email FROM users ORDER BY id LIMIT 1")).scalar_one()
    with running_console(console.database_url, tmp_path) as fresh:
        context = browser.new_context(viewport={"width": 1440, "height": 1400})
        try:
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(f"{fresh.url}/debug_filter?user={email}")
            tab.locator('[data-testid="stMain"] h1', has_text="Debug filter").wait_for()
            tab.get_by_text("Candidates left after each stage").wait_for()
            wait_idle(tab)
            links = tab.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
            expect(links).to_have_count(len(EXPECTED))
            titles = [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts()]
            assert titles == list(EXPECTED), titles
            # the DOM value attribute lags React's state: wait on the box's value, not a snapshot
            expect(tab.locator('[data-testid="stMain"]').get_by_label("User (email)")).to_have_value(email)
            _no_exception(tab, "deep link")
        finally:
            context.close()
