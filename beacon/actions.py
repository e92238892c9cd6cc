"""Every state-changing service function is declared here with @state_changing.

Pages and the CLI call those functions and nothing else to change state, so the role check
that comes with sign-in goes in one place: `authorize`.
"""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)

#: action name -> the service function that performs it (the console and tests list them)
REGISTRY: dict[str, Callable] = {}


def authorize(action: str, actor: str | None) -> None:
    """Every operator may do everything until sign-in and roles land; then this raises."""


def state_changing(action: str) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        if action in REGISTRY:
            raise RuntimeError(f"action {action!r} is declared twice")

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            authorize(action, kwargs.get("requested_by"))
            return function(*args, **kwargs)

        REGISTRY[action] = wrapper
        return wrapper  # type: ignore[return-value]

    return decorate
