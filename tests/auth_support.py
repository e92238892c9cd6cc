"""Who a test acts as, and signed-in consoles for tests.

- `actor(name, role)`, ADMIN / OPERATOR / VIEWER: for service calls (every state-changing
  call needs an actor).
- `signed_in_app(role=...)`: an AppTest of the console whose session is signed in as an
  operator with that role (the operator is created in the test's database).
- `sign_in_page(page, base_url, role=...)`: a Playwright page signed in through the real form
  (tests/browser_support.py has the running console).
"""
from __future__ import annotations

from pathlib import Path

from beacon.actions import Actor

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "dashboard.py"
PASSWORD = "test password of a test operator"
ACTOR_KEY = "beacon_actor"  # pages/_ui.ACTOR_KEY: where the console keeps who is signed in


def shown(markdown: str) -> str:
    """The text a Markdown source shows: the console escapes punctuation in text from data
    (pages/_ui.plain) and puts addresses in code spans, and a test compares what a person
    reads."""
    import re

    return re.sub(r"\\(.)|`", lambda m: m.group(1) or "", markdown).replace("\u200b", "")


def actor(name: str = "admin@example.org", role: str = "admin") -> Actor:
    """A signed-in console operator with `role`."""
    return Actor(name, kind="operator", role=role)


ADMIN = actor()
OPERATOR = actor("operator@example.org", "operator")
VIEWER = actor("viewer@example.org", "viewer")


def ensure_operator(role: str = "admin", email: str | None = None,
                    password: str = PASSWORD) -> str:
    """An enabled operator with `role` in the current database (DATABASE_URL); its email."""
    from beacon import operators
    from beacon.actions import cli_actor

    email = email or f"{role}@example.org"
    found = operators.get_operator(email)
    if found is None:
        operators.add_operator(email, role=role, password=password, actor=cli_actor())
    elif found.role != role:
        operators.set_role(email, role, actor=cli_actor())
    return email


def signed_in_app(role: str = "admin", script: Path = DASHBOARD, timeout: float = 120,
                  email: str | None = None):
    """An AppTest of `script` signed in as an operator with `role` (not run yet).

    The session is marked signed in the way the sign-in form leaves it; the gate still checks
    the operator against the database on every run (role, disabled)."""
    from streamlit.testing.v1 import AppTest

    email = ensure_operator(role, email)
    at = AppTest.from_file(str(script), default_timeout=timeout)
    at.session_state[ACTOR_KEY] = Actor(email, kind="operator", role=role)
    return at


def sign_in_page(page, base_url: str, role: str = "admin", email: str | None = None,
                 password: str = PASSWORD, path: str = "", timeout_ms: float = 60_000):
    """Sign a Playwright page in through the console's sign-in form (opening `path` first, a
    deep link say); returns the page, signed in, its session cookie set."""
    from playwright.sync_api import expect

    from tests.browser_support import wait_idle

    email = ensure_operator(role, email, password)
    page.goto(base_url + path)
    page.get_by_role("button", name="Sign in").wait_for(timeout=timeout_ms)
    # during a rerun the old and the new component frame can both be attached
    page.locator('iframe[title*="CookieManager"]').first.wait_for(state="attached",
                                                               timeout=timeout_ms)
    sidebar = page.locator('[data-testid="stSidebar"]')
    # the cookie component reports back once mounted, which reruns the script: what is typed
    # during that rerun can be lost, so a form that is still there unsigned is filled again
    for attempt in range(3):
        wait_idle(page, timeout_ms)
        page.get_by_label("Email").fill(email)
        page.get_by_role("textbox", name="Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        try:
            expect(sidebar).to_contain_text(email, timeout=timeout_ms if attempt == 2 else 15_000)
            break
        except AssertionError:
            if attempt == 2 or not page.get_by_role("button", name="Sign in").is_visible():
                raise
    # the session cookie is written by a component a moment after the page shows
    page.wait_for_function("document.cookie.includes('beacon_session=')", timeout=timeout_ms)
    return page
