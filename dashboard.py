"""Beacon's operator console: `streamlit run dashboard.py`.

The router and the frame: schema check, first start, the sidebar status, then the page.
"""
from __future__ import annotations

import functools
from pathlib import Path

import streamlit as st

from beacon import bootstrap, console
from beacon.errors import BeaconError
from beacon.invocation import beacon_command
from pages import _auth, _ui

ROOT = Path(__file__).resolve().parent

PAGES = [  # (file, title, icon, default)
    ("pages/overview.py", "Overview", ":material/dashboard:", True),
    ("pages/users.py", "Users", ":material/person_search:", False),
    ("pages/recommendations.py", "Recommendations", ":material/recommend:", False),
    ("pages/debug_filter.py", "Debug filter", ":material/filter_alt:", False),
    ("pages/training.py", "Training", ":material/model_training:", False),
    ("pages/models.py", "Models", ":material/inventory_2:", False),
    ("pages/metrics.py", "Metrics", ":material/monitoring:", False),
]
ADMIN_PAGES = [  # shown to administrators only (the services refuse everyone else anyway)
    ("pages/audit.py", "Audit", ":material/policy:", False),
    ("pages/api_keys.py", "API keys", ":material/key:", False),
]

def _icon():
    """Drawn here: a :material/...: page icon made every browser fetch it from Google's CDN."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((6, 6, 58, 58), fill="#2F6FEB")
    return image


st.set_page_config(page_title="Beacon console", page_icon=_icon(), layout="wide")


@st.cache_resource(show_spinner="Checking the database schema…")
def _prepared(database: str) -> list[int]:
    """Once per process and database: schema to head (embedded default), abandoned runs freed."""
    return bootstrap.prepare(database)


@st.cache_resource(show_spinner=False)
def _first_admin(database: str) -> bool:
    """Once per process: the embedded default's first administrator (password to the terminal)."""
    return bootstrap.first_admin(database)


@st.cache_data(ttl=15, show_spinner=False)
def _sidebar(database: str, stamp: tuple) -> console.SidebarStatus:
    return console.sidebar_status()


def _not_ready_page(error: BaseException) -> None:
    st.title("Beacon console")
    if getattr(error, "needs_upgrade", False):
        st.error("The database is not at the schema this version of Beacon needs.",
                 icon=":material/database:")
        st.text(str(error))
        st.markdown("From the project directory, with the same `DATABASE_URL`:")
        st.code(beacon_command("db upgrade"), language="bash")
    else:
        st.error("The database cannot be used.", icon=":material/database:")
        st.text(str(error))
        st.markdown("Check `DATABASE_URL` and, for a server, that it is up.")
    st.caption("Then reload this page.")


@st.fragment(run_every="1.5s")
@_ui.guarded
def _first_start_progress(database: str) -> None:
    state = bootstrap.first_start_state(database)
    if state.kind == "ready":
        st.session_state["_beacon_ready"] = database
        st.cache_data.clear()
        st.rerun(scope="app")
    if state.kind == "failed":
        _ui.error_box(state.message, "See the server log for details.")
        if st.session_state[_ui.ACTOR_KEY].role == "admin" and st.button("Try again"):
            bootstrap.forget_job(database)
            st.rerun(scope="app")
        return
    st.progress(state.fraction or 0.0, text=state.message or "Working…")
    if state.progress:
        _ui.chart(_ui.loss_figure(state.progress, state.total_epochs), key="first_start_loss")


def _first_start_page(database: str, state: bootstrap.FirstStart) -> None:
    st.title("Welcome to Beacon")
    if state.kind == "needs_data":
        st.info("This database is empty.", icon=":material/database:")
        st.markdown(state.message)
        return
    st.markdown(
        "This is the first start on the embedded database: Beacon is loading demo data and "
        "training a first model in the background. The console opens by itself when the model "
        "is ready; you may also leave and come back."
    )
    _first_start_progress(database)


def _sidebar_frame(database: str, running: console.LiveRun | None) -> None:
    with st.sidebar:
        # the model and training lines redraw on their own (a page reruns only on input):
        # every 3 s while a run goes on, every 15 s otherwise, so a run started elsewhere and
        # the version it activates show up on any page
        st.fragment(run_every=3 if running is not None else 15)(_status_lines)(database)


def _status_lines(database: str) -> None:
    status = _sidebar(database, console.versions_stamp())
    db = status.database
    where = f"{db['dialect']}" + (f" · {db['host']}" if db["host"] else "")
    st.markdown(f"**Database** · {where}  \n`{Path(db['database']).name if db['dialect'] == 'sqlite' else db['database']}`")
    active = status.active
    if active is None:
        st.markdown("**Model** · none active")
    else:
        badge = {"current": ":green-badge[current]", "stale": ":orange-badge[stale]"}.get(
            active.fingerprint_state, ":gray-badge[unknown]")
        st.markdown(f"**Model** · v{active.id} · {active.age_text} old  \n"
                    f"Data fingerprint {badge}")
    running = console.running_training()
    if running is None:
        st.markdown("**Training** · idle")
        return
    where = f" · {running.short_progress}" if running.short_progress else ""
    st.markdown(f"**Training** · :blue-badge[{running.status}] run {running.id}{where}")


database = console.database_key()
try:
    _prepared(database)
except BeaconError as error:
    st.navigation([st.Page(lambda: _not_ready_page(error), title="Database", url_path="setup")],
                  position="hidden").run()
    st.stop()

_registered: list = []  # the navigation of this run, once registered


def _navigation(actor=None):
    """The pages' navigation, registered once per run (Streamlit needs it registered even when
    no page can be shown, or it falls back to running files from pages/ directly). Without a
    signed-in actor it is hidden: nobody is shown the console's pages before signing in."""
    if not _registered:
        pages = [st.Page(path, title=title, icon=icon, default=default)
                 for path, title, icon, default in navigation_paths(actor)
                 if (ROOT / path).exists()]
        if actor is not None and actor.role != "admin":  # a link to an admin page says why
            pages += [st.Page(functools.partial(_admin_only, title, actor), title=title,
                              icon=icon, url_path=Path(path).stem, visibility="hidden")
                      for path, title, icon, _ in ADMIN_PAGES]
        _registered.append(st.navigation(pages, position="sidebar" if actor else "hidden"))
    return _registered[0]


def _admin_only(title: str, actor) -> None:
    """What an operator or viewer who follows a link to an administrators' page sees."""
    st.title(title)
    st.warning(f"This page is for administrators; you are signed in with the {actor.role} "
               "role. An administrator can change your role.", icon=":material/lock:")


def navigation_paths(actor) -> list[tuple]:
    """The pages `actor` is shown (administrators see two more)."""
    return PAGES + (ADMIN_PAGES if actor is not None and actor.role == "admin" else [])


def _frame() -> None:
    bootstrap.check_database(database)  # an SQLite file deleted under a running console
    _first_admin(database)
    actor = _auth.gate([Path(path).stem for path, *_ in PAGES + ADMIN_PAGES])  # before anything
    _auth.sign_out_button()
    if st.session_state.get("_beacon_ready") != database:
        first = bootstrap.first_start_state(database)
        if first.kind != "ready":
            _registered.append(st.navigation(
                [st.Page(lambda: _first_start_page(database, first), title="Welcome",
                         url_path="welcome")], position="hidden"))
            _registered[0].run()
            st.stop()
        st.session_state["_beacon_ready"] = database

    navigation = _navigation(actor)
    deep_link = _ui.pending_deep_link()  # one that arrived before the router ran
    if deep_link is not None:
        target, query = deep_link
        if target in {path for path, *_ in navigation_paths(actor)}:
            st.switch_page(target, query_params=query)
        st.session_state.pop(_ui.DEEP_LINK_KEY, None)  # a page this operator is not shown
    _sidebar_frame(database, console.running_training())
    navigation.run()


try:
    _frame()
except Exception as failure:  # noqa: BLE001 - the database going away mid-session, a failed
    # write, a bug: one line on the page (reruns and st.stop are BaseException and pass)
    _navigation()
    _ui.failure_box(failure)
