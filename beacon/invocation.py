"""The command line as this process would run it, for the commands the console and the first
start print for an operator to copy."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path


def beacon_command(args: str) -> str:
    """`python -m beacon <args>` with this process's own interpreter: in a virtual environment
    (the scripts make `.venv`) a bare `python` in a fresh shell lacks Beacon's packages, so the
    path goes in, relative to the working directory when under it."""
    if sys.prefix == sys.base_prefix or not sys.executable:
        return f"python -m beacon {args}"
    executable = Path(sys.executable)
    try:
        shown = str(executable.relative_to(Path.cwd()))
    except ValueError:
        shown = str(executable)
    return f"{shlex.quote(shown)} -m beacon {args}"
