"""The repository explains itself: the documented examples import, every command is documented,
the README's scripts and links exist, and nothing points outside the repository."""
from __future__ import annotations

import json
import re
import subprocess

from beacon.cli import build_parser
from tests.conftest import REPO_ROOT
from tests.test_cli import run_cli

EXAMPLES = REPO_ROOT / "docs" / "examples"
USER_DOCS = [REPO_ROOT / "README.md", REPO_ROOT / "ARCHITECTURE.md",
             *sorted((REPO_ROOT / "docs").glob("*.md"))]


def test_the_documented_examples_import_and_again_change_nothing(db: str) -> None:
    args = ("import", "--users", str(EXAMPLES / "users.csv"), "--events",
            str(EXAMPLES / "events.csv"), "--interactions", str(EXAMPLES / "interactions.csv"),
            "--json")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    counts = json.loads(first.stdout)
    assert [counts[k]["inserted"] for k in ("users", "events", "interactions")] == [4, 5, 7]
    again = json.loads(run_cli(*args).stdout)
    assert [again[k]["inserted"] + again[k].get("updated", 0)
            for k in ("users", "events", "interactions")] == [0, 0, 0]


def test_every_command_is_documented() -> None:
    documented = (REPO_ROOT / "docs" / "command-line.md").read_text()
    commands = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001
    for name in commands:
        assert re.search(rf"^### .*`{re.escape(name)}[` ]", documented, re.M), name


def test_readme_scripts_and_links_exist() -> None:
    text = "\n".join(path.read_text() for path in USER_DOCS)
    for script in set(re.findall(r"\bscripts/([a-z-]+)", text)):
        path = REPO_ROOT / "scripts" / script
        assert path.is_file() and path.stat().st_mode & 0o111, path
    for doc in USER_DOCS:
        for target in re.findall(r"\]\(([^)#]+)\)", doc.read_text()):
            if not target.startswith("http"):
                assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_commands_use_the_project_interpreter_not_a_bare_python() -> None:
    for doc in USER_DOCS:
        for line in doc.read_text().splitlines():
            bare = re.search(r"(^|[\s`])python3? -m beacon", line)
            if bare and "python -m beacon --help" not in line:  # the activated-venv example
                raise AssertionError(f"{doc.name}: bare python: {line}")


def test_nothing_points_outside_the_repository() -> None:
    outside = "|".join(re.escape(p) for p in ("../" + "shared", "/work/" + "shared"))
    listed = subprocess.run(["git", "grep", "-lE", outside, "--", ".", ":!.ci"], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert listed.returncode == 1 and listed.stdout == "", listed.stdout
