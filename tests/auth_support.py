"""Who a test acts as: every state-changing service call needs an actor."""
from __future__ import annotations

from beacon.actions import Actor


def actor(name: str = "admin@example.org", role: str = "admin") -> Actor:
    """A signed-in console operator with `role`."""
    return Actor(name, kind="operator", role=role)


ADMIN = actor()
OPERATOR = actor("operator@example.org", "operator")
VIEWER = actor("viewer@example.org", "viewer")
