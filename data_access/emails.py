"""The one rule for email addresses: an account is its email trimmed and lowercased.

Every way in (import, demo data, lookups from the CLI, the console and the services) goes
through `normalize_email`, and the users table refuses anything else (ck_users_email_normalized),
so `Ann@Example.org` and `ann@example.org` can never become two users.
"""
from __future__ import annotations

import re

#: what an account's address must look like, wherever a user is created (import, API)
EMAIL_PATTERN = r"^[^@\s\x00]+@[^@\s.\x00]+(\.[^@\s.\x00]+)+$"
EMAIL_RE = re.compile(EMAIL_PATTERN)


def normalize_email(email: str | None) -> str:
    """`  Ann@Example.ORG ` -> `ann@example.org` (an empty string for None)."""
    return (email or "").strip().lower()
