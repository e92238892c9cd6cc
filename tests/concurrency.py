"""Calls that must race: started together at a barrier, each in its own thread."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any


def at_once(work: Callable[[Any], Any], arguments: Iterable[Any],
            timeout: float = 120.0) -> list[BaseException]:
    """`work(a)` for each `a`, all released at one barrier; what they raised (none: [])."""
    arguments = list(arguments)
    barrier = threading.Barrier(len(arguments))
    errors: list[BaseException] = []

    def run(argument: Any) -> None:
        try:
            barrier.wait(timeout)
            work(argument)
        except BaseException as error:  # noqa: BLE001 - returned to the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(a,)) for a in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return errors
