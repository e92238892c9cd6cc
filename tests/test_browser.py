"""The console in a real browser: `streamlit run dashboard.py` on a seeded database, driven by
Debian's chromium through Playwright. Every page in the sidebar renders without an exception
and shows its content; a retrain started from the Training page is watched to the end; a
rollback on the Models page goes through its confirmation. Screenshots land in /tmp."""
from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from beacon.demo import load_demo_data
from data_access import migrate, runs
from tests.browser_support import (
    CHROMIUM_ARGS,
    NO_CHROMIUM,
    SHOTS,
    Console,
    FAILED,
    chromium_path,
    close_tab,
    report_failure,
    running_console,
    wait_idle,
)
from tests.auth_support import ADMIN, actor, sign_in_page

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
    "Audit": "newest first",  # administrators only
    "API keys": "New key",  # administrators only
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
            load_demo_data(users=80, events=50, days=21, seed=5, actor=ADMIN)
            for seed in (1, 2):
                result = train(force=True, config=config.with_overrides(seed=seed),
                               actor=actor("fixture"))
                assert result.status == "trained", result
            with running_console(url, work) as running:
                yield running


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = chromium_path()
    if executable is None:  # conftest skips browser tests first; this guards a direct use
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser, console: Console, request: pytest.FixtureRequest):
    """A tab signed in as an administrator (tests/auth_support.sign_in_page)."""
    context = browser.new_context(viewport={"width": 1440, "height": 2200})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    sign_in_page(tab, console.url, role="admin")
    wait_idle(tab)
    yield tab
    if request.node.stash.get(FAILED, False):
        report_failure(tab, console)
    context.close()


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _no_exception(page, where: str) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, f"{where}: {errors.first.inner_text()}"


def _click_until(page, target, follows, undo=None, tries: int = 3) -> None:
    """Click `target` until `follows(timeout=ms)` sees what the click should bring. A click
    that lands while the script reruns can be dropped by the frontend (or a list it opened
    closed again), so it is clicked again, after `undo()` when given, when nothing followed."""
    for attempt in range(tries):
        wait_idle(page)
        target.click()
        try:
            follows(timeout=20_000 if attempt < tries - 1 else 60_000)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
            if undo is not None:
                undo()


def _pick(page, combobox, option) -> None:
    """Open a selectbox or multiselect and click one of its options (seen on a loaded
    machine: a rerun closed the list before the option showed)."""
    _click_until(page, combobox, option.click, undo=lambda: page.keyboard.press("Escape"))


def _open(page, title: str, shows=None) -> None:
    """Open a page from the sidebar and wait for its title (the session cookie's component
    reports back once after sign-in, and a click during that rerun can be dropped), and for
    `shows` (a locator) when given.

    Seen once in about twenty CI runs: the Training page drew its title and nothing under it
    for a minute, its script idle. Not reproduced in 8 runs under load since. When `shows`
    does not come, a warning (in the run's warnings summary, even when the test then passes)
    says what the tab showed, and the page is opened once more; a second miss fails the
    test."""
    heading = page.locator('[data-testid="stMain"] h1').filter(
        has_text=re.compile(rf"^\s*{re.escape(title)}\s*$")).first
    link = page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]',
                        has_text=title).first
    _click_until(page, link, heading.wait_for)
    wait_idle(page)
    if shows is None:
        return
    try:
        shows.first.wait_for(timeout=20_000)
    except PlaywrightTimeout:
        # a warning, unlike print, reaches the log of a run that passes after the retry
        warnings.warn(f"{title}: the page showed its title without {shows} for 20 s; opened "
                      f"again. What it showed:\n{report_failure(page)[:2500]}", stacklevel=2)
        page.goto(page.url)
        heading.wait_for()
        wait_idle(page)
        shows.first.wait_for()


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
    assert run is not None and run.trigger == "force" and run.requested_by == "admin@example.org"
    live = main.get_by_text(re.compile(
        rf"Run {run_id} \(force by admin@example.org\): (refit on all data, )?epoch [1-9]\d* of \d+"))
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
    _pick(page, main.get_by_role("combobox", name=re.compile("Version")).first,
          page.get_by_role("option", name=re.compile(rf"^v{older.id} · global")))
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
        versions.activate(active.id, actor=actor("test"))


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
        tab = context.new_page()
        try:
            tab.set_default_timeout(60_000)
            sign_in_page(tab, fresh.url, role="admin", path=f"/debug_filter?user={email}")
            heading = tab.locator('[data-testid="stMain"] h1')
            try:
                heading.filter(has_text="Debug filter").wait_for()
            except PlaywrightTimeout:  # say where the page went instead (the Overview, say)
                pytest.fail(f"no Debug filter page at {tab.url}: headings {heading.all_inner_texts()}")
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
            close_tab(context, tab, fresh)


def _window_case(email_count: int = 40):
    """A user, two of the coming days and an event on the first of them that a 22:00-02:00
    window drops, with the reason the engine gives (computed like the page computes it)."""
    from datetime import datetime, time, timedelta, timezone

    from beacon import insights
    from beacon.filters import FilterParams
    from data_access import catalog

    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    days = insights.coming_days(now)
    for _, email in catalog.all_user_ids(limit=email_count):
        window = FilterParams.parse(start=time(22, 0), end=time(2, 0))
        view = insights.debug_view(email, window, now=now, show="in time window")
        for row in view.rows:
            first = datetime.strptime(row["local start"], "%a %Y-%m-%d %H:%M").date()
            if first not in days:
                continue
            second = first + timedelta(days=1) if first + timedelta(days=1) in days else days[0]
            params = FilterParams.parse(dates=[first, second], start=time(22, 0), end=time(2, 0))
            both = insights.debug_view(email, params, now=now, show="in time window")
            dropped = {r["event_id"]: r["reason"] for r in both.rows}
            if row["event_id"] in dropped:
                return email, (first, second), row["event_id"], dropped[row["event_id"]]
    pytest.fail("the demo platform has no event that a 22:00-02:00 window drops")


def _open_linked_debug_filter(page, console: Console, email: str):
    """The debug filter opened by its link for `email`, with the box showing the email.

    Under a loaded CI machine the box was seen empty twice in about a dozen runs while the
    page had run for the linked user (the funnel drawn): the browser kept the value it had
    before the linked one arrived. The server side of that race is tested without a browser
    (tests/test_console_user.py: a user arriving after the box was made, an emptied box). Here
    the link is opened once more in that case, and a second empty box fails the test."""
    main = page.locator('[data-testid="stMain"]')
    for attempt in (1, 2):
        page.goto(f"{console.url}/debug_filter?user={email}")
        main.get_by_text("Candidates left after each stage").wait_for()
        wait_idle(page)
        try:
            expect(main.get_by_label("User (email)")).to_have_value(email)
            return main
        except AssertionError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def test_debug_filter_two_dates_and_a_window_across_midnight(page, console: Console) -> None:
    """An operator picks two calendar dates and a 22:00-02:00 window: the page says the window
    crosses midnight, draws the funnel and the candidate table, and an event the window drops
    shows why."""
    email, dates, event_id, reason = _window_case()
    main = _open_linked_debug_filter(page, console, email)

    # while a rerun redraws the page its former elements stay until the new ones replace
    # them: one checkbox to click, not its copy on the way out
    calendar = main.get_by_text("Calendar filter: only on selected dates")
    expect(calendar).to_have_count(1)
    calendar.click()
    dates_box = main.get_by_role("combobox", name=re.compile("Dates"))
    expect(dates_box).to_be_enabled()
    for day in dates:
        label = day.strftime("%a %d %b %Y")
        dates_box.click()
        page.keyboard.type(label)
        page.get_by_role("option", name=label).click()
        expect(main.locator('[data-testid="stMultiSelect"]').filter(
            has_text="Dates (event local date)")).to_contain_text(label)
    page.keyboard.press("Escape")

    window = main.get_by_text("Daily time window")
    expect(window).to_have_count(1)
    window.click()
    for which, hour in (("From", "22"), ("To", "02")):
        hours = main.get_by_role("spinbutton", name=f"hour, {which}")
        expect(hours).to_be_editable()
        hours.click()
        page.keyboard.type(hour)
        main.get_by_role("spinbutton", name=f"minute, {which}").click()
        page.keyboard.type("00")
        page.keyboard.press("Tab")
        expect(main.get_by_role("spinbutton", name=f"hour, {which}")).to_have_text(hour)
    # the controls and the result both say that the window crosses midnight
    expect(main.get_by_text(re.compile("Window across midnight: from 22:00 to 02:00"))).to_be_visible()
    summary = main.locator('[data-testid="stAlertContentInfo"]').filter(
        has_text="22:00–02:00 (across midnight: ends the next day)")
    expect(summary).to_be_visible()
    wait_idle(page)

    funnel = main.locator('[data-testid="stPlotlyChart"]').first
    expect(funnel).to_be_visible()
    expect(main.locator('[data-testid="stDataFrame"]').first).to_contain_text("in time window")

    _pick(page, main.get_by_role("combobox", name=re.compile("Show only")),
          page.get_by_role("option", name=re.compile(r"^dropped by: in time window \(\d+\)")))
    rows = main.locator('[data-testid="stDataFrame"]').filter(has_text=event_id)
    expect(rows).to_contain_text(reason)
    wait_idle(page)
    _no_exception(page, "debug filter across midnight")
    _shot(page, "debug_filter_across_midnight")


# --- sign-in, roles, audit, hostile text --------------------------------------------------------

def _fresh_tab(browser, width: int = 1440, height: int = 1600):
    context = browser.new_context(viewport={"width": width, "height": height})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    return context, tab


def _nav_titles(tab) -> list[str]:
    links = tab.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
    return [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts()]


def test_anonymous_sees_only_the_sign_in_and_a_wrong_password_is_counted(
        browser, console: Console) -> None:
    from data_access import audit
    from tests.auth_support import ensure_operator

    email = ensure_operator("viewer", "guessed@example.org")
    context, tab = _fresh_tab(browser)
    try:
        for path in ("", "/models", "/training", "/debug_filter?user=x@example.org"):
            tab.goto(console.url + path)
            tab.get_by_role("button", name="Sign in").wait_for()
            wait_idle(tab)
            main = tab.locator('[data-testid="stMain"]').inner_text()
            assert "Active model" not in main and "Compare two versions" not in main, path
            assert tab.locator('[data-testid="stSidebarNavLink"]').count() == 0, path
            assert tab.locator('[data-testid="stMetric"], [data-testid="stDataFrame"]').count() == 0
        tab.get_by_label("Email").fill(email)
        tab.get_by_role("textbox", name="Password").fill("certainly not it")
        tab.get_by_role("button", name="Sign in").click()
        tab.get_by_text("wrong email or password").wait_for()
        _shot(tab, "sign_in_refused")
        assert tab.locator('[data-testid="stSidebarNavLink"]').count() == 0
        refused = [r for r in audit.entries(action="sign_in", who=email)]
        assert [r.outcome for r in refused] == ["refused"]
    finally:
        close_tab(context, tab, console)


def test_a_reload_keeps_the_session_and_signing_out_ends_it(browser, console: Console) -> None:
    context, tab = _fresh_tab(browser)
    try:
        sign_in_page(tab, console.url, role="viewer")
        tab.reload()
        expect(tab.locator('[data-testid="stSidebar"]')).to_contain_text("viewer@example.org")
        # after a reload the cookie component reports back and the page runs again: a click
        # while that run redraws the sidebar can land on the button being replaced
        wait_idle(tab)
        tab.get_by_role("button", name="Sign out").click()
        tab.get_by_role("button", name="Sign in").wait_for()
        tab.wait_for_function("!document.cookie.includes('beacon_session=')")
        tab.reload()
        tab.get_by_role("button", name="Sign in").wait_for()
        wait_idle(tab)
        assert tab.locator('[data-testid="stSidebarNavLink"]').count() == 0
    finally:
        close_tab(context, tab, console)


def test_viewer_sees_every_page_but_no_control_that_changes_state(browser,
                                                                  console: Console) -> None:
    context, tab = _fresh_tab(browser, height=2200)
    try:
        sign_in_page(tab, console.url, role="viewer")
        titles = _nav_titles(tab)
        assert titles == [t for t in EXPECTED if t not in ("Audit", "API keys")], titles
        forbidden = re.compile(r"retrain|Retrain user|Activate|Delete|Cancel this training|"
                               r"Refresh this user|Train with|Save for every|built-in defaults|"
                               r"Preview")
        for title in titles:
            _open(tab, title)
            tab.locator('[data-testid="stMain"]').get_by_text(EXPECTED[title]).first.wait_for()
            wait_idle(tab)
            buttons = tab.locator('[data-testid="stMain"] button').all_inner_texts()
            assert not [b for b in buttons if forbidden.search(b)], (title, buttons)
            _no_exception(tab, f"viewer on {title}")
        _shot(tab, "viewer_models")
        # a link to an administrators' page says why it shows nothing, and lists nothing
        tab.goto(console.url + "/audit")
        tab.locator('[data-testid="stMain"]').get_by_text(
            "This page is for administrators").first.wait_for()  # a rerun may draw it twice
        assert _nav_titles(tab) == titles
        assert not tab.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').count()
    finally:
        close_tab(context, tab, console)


def test_operator_trains_and_cancels(browser, console: Console) -> None:
    from data_access import audit

    context, tab = _fresh_tab(browser, height=2200)
    try:
        sign_in_page(tab, console.url, role="operator")
        assert "Audit" not in _nav_titles(tab)
        main = tab.locator('[data-testid="stMain"]')
        _open(tab, "Training", shows=main.get_by_text("Training settings"))
        main.get_by_text("Training settings").click()
        for label, value in (("Epochs (maximum)", "400"), ("Early-stopping patience", "400")):
            box = main.get_by_label(label)
            box.fill(value)
            box.press("Tab")
        main.get_by_role("button", name=re.compile("Train with these settings")).click()
        started = main.get_by_text(re.compile(r"Started forced retrain: run \d+"))
        started.wait_for()
        run_id = int(re.search(r"run (\d+)", started.inner_text()).group(1))
        main.get_by_role("button", name=re.compile("Cancel this training")).click(
            timeout=120_000)
        main.get_by_text("No training is running.").wait_for(timeout=120_000)
        final = runs.get_run(run_id)
        assert final.status == "cancelled", (final.status, final.reason)
        assert "operator@example.org" in final.reason
        assert runs.running_run("global") is None, "the lock is free"
        assert [r.outcome for r in audit.entries(action="cancel_training",
                                                 who="operator@example.org")] == ["ok"]
        _shot(tab, "operator_cancelled")
    finally:
        close_tab(context, tab, console)


def test_hostile_text_stays_text(browser, console: Console, tmp_path: Path) -> None:
    """Names, cities, titles, tags, organizers, emails and ?user= made of Markdown, HTML and
    directives: no request leaves for their addresses and no link or image of theirs is drawn."""
    from datetime import datetime, timedelta, timezone

    from beacon.importer import import_csv

    evil = "http://evil.example"
    hostile = (f"![pixel]({evil}/pixel.png) [click here]({evil}/phish) <img src={evil}/i.png> "
               f"<a href={evil}/a>a</a> :red[ALERT] www.evil.example $x^2$")
    start = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0)
    (tmp_path / "users.csv").write_text(
        "email,name,latitude,longitude,city,interest_tags\n"
        f'hostile@example.org,"{hostile.replace(chr(34), chr(39))}",52.52,13.40,'
        f'"![c]({evil}/c.png) [l]({evil}/l) :red[ALERT]","[tag]({evil}/t);<b>bold</b>"\n')
    (tmp_path / "events.csv").write_text(
        "event_id,title,category,tags,organizer,city,latitude,longitude,start_time,end_time,"
        "timezone,price,capacity\n"
        f'evil-1,"{hostile.replace(chr(34), chr(39))}","<i>cat</i>","[x]({evil}/x)",'
        f'"[org]({evil}/o)",Berlin,52.52,13.41,{start.isoformat()},,Europe/Berlin,5,10\n')
    import_csv(users=tmp_path / "users.csv", events=tmp_path / "events.csv", actor=ADMIN)

    context, tab = _fresh_tab(browser, height=2200)
    outside: list[str] = []
    tab.on("request", lambda request: outside.append(request.url)
           if "127.0.0.1" not in request.url and not request.url.startswith(("data:", "blob:"))
           else None)
    try:
        sign_in_page(tab, console.url, role="admin")
        for path in ("/users", "/recommendations?user=hostile@example.org",
                     "/debug_filter?user=hostile@example.org",
                     f"/debug_filter?user=[x]({evil}/u)"):
            if path == "/users":
                _open(tab, "Users")
                tab.get_by_label("Find a user by email or name").fill("hostile")
                tab.get_by_label("Find a user by email or name").press("Enter")
                # the profile's line, not the matches table's hidden "interest tags" header
                # (get_by_text ignores case, and that header can come first in the page)
                tab.get_by_text(re.compile(r"^Interest tags: ")).wait_for()
            else:
                tab.goto(console.url + path)
                tab.locator('[data-testid="stMain"] h1').first.wait_for()
            wait_idle(tab)
            tab.wait_for_timeout(1000)
            _no_exception(tab, path)
            drawn = tab.locator('a[href*="evil"], img[src*="evil"], [href*="evil"]')
            assert drawn.count() == 0, (path, drawn.evaluate_all(
                "els => els.map(e => (e.closest('[data-testid]') || e).getAttribute("
                "'data-testid') + ': ' + (e.closest('[data-testid]') || e).outerHTML.slice(0, 300))"))
            assert tab.locator('a[href^="mailto:"]').count() == 0, path
            if path.startswith("/recommendations"):
                # the address is drawn as text that copies as it is (no zero-width space)
                tab.locator('[data-testid="stMain"] code').get_by_text(
                    "hostile@example.org", exact=True).first.wait_for()
            # a :red[...] directive that ran would leave "ALERT" alone in a coloured span
            assert tab.locator('[data-testid="stMain"]').get_by_text(
                "ALERT", exact=True).count() == 0, path
            _shot(tab, "hostile" + path.replace("/", "_").split("?")[0])
        # Streamlit's map frontend loads its default Carto style even with map_style=None: the
        # console's own request, the same for every page, carrying nothing from the data.
        frontend_own = "https://basemaps.cartocdn.com/gl/positron-gl-style/style.json"
        assert [url for url in outside if url != frontend_own] == [], outside
    finally:
        close_tab(context, tab, console)


def test_admin_rolls_back_cleans_up_and_finds_it_all_in_the_audit(page,
                                                                  console: Console) -> None:
    """Last in this module: it deletes versions."""
    from beacon import versions

    listed = versions.list_versions(scope="global")
    older = next(v for v in listed if v.status == "inactive")
    _open(page, "Models")
    main = page.locator('[data-testid="stMain"]')
    _pick(page, main.get_by_role("combobox", name=re.compile("Version")).first,
          page.get_by_role("option", name=re.compile(rf"^v{older.id} · global")))
    main.get_by_role("button", name=f"Activate v{older.id} (rollback)").click()
    main.get_by_role("button", name=f"Yes, activate v{older.id}").click()
    main.get_by_text(f"Version {older.id} is now active.").wait_for()
    wait_idle(page)
    keep_days = main.get_by_label("Keep versions younger than (days)")
    keep_days.fill("0")
    main.get_by_label("Always keep the newest").fill("1")
    main.get_by_role("button", name=re.compile("Preview")).click()
    delete = main.get_by_role("button", name=re.compile(r"Delete these \d+ versions"))
    delete.click()
    main.get_by_text(re.compile(r"Deleted \d+ model version")).wait_for()
    wait_idle(page)
    assert versions.show(older.id).status == "active", "cleanup never deletes the active one"
    _open(page, "Audit")
    table = main.locator('[data-testid="stDataFrame"]').first
    for action in ("activate_model", "cleanup_models", "cancel_training", "sign_in", "train"):
        expect(table).to_contain_text(action)
    _no_exception(page, "Audit")
    _shot(page, "audit")
