"""`beacon training-settings show|set|reset`: the settings smart retrains (cron, the API, the
console's button) train with. Saving and resetting are audited under `cli:<os user>`."""
from __future__ import annotations

import argparse
import json
from typing import Any

from beacon.cli.common import add_json_flag, emit
from beacon.errors import BeaconError

VALUES_HELP = ("values are read as JSON (40, 0.01, true, \"bpr\"), a bare word as text; one "
               "interaction type's weight as type_weights.click=0.3")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "training-settings", help="show or change the settings smart retrains train with")
    commands = parser.add_subparsers(dest="settings_command", required=True, metavar="ACTION")

    show = commands.add_parser("show", help="every setting, its value, saved or built-in")
    add_json_flag(show)
    show.set_defaults(handler=show_cmd)

    save = commands.add_parser("set", help="save settings for every later smart retrain; "
                               + VALUES_HELP)
    save.add_argument("assignments", nargs="+", metavar="NAME=VALUE")
    add_json_flag(save)
    save.set_defaults(handler=set_cmd)

    reset = commands.add_parser("reset", help="back to the built-in defaults: every setting, "
                                "or only the NAMEs given")
    reset.add_argument("names", nargs="*", metavar="NAME")
    add_json_flag(reset)
    reset.set_defaults(handler=reset_cmd)


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """["epochs=40", "loss=bpr", "type_weights.click=0.3"] -> the settings they name."""
    settings: dict[str, Any] = {}
    for text in assignments:
        name, equals, raw = text.partition("=")
        name = name.strip()
        if not equals or not name:
            raise BeaconError(f"{text!r} is not NAME=VALUE (e.g. epochs=40)")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if name.startswith("type_weights."):
            settings.setdefault("type_weights", {})[name.split(".", 1)[1]] = value
        else:
            settings[name] = value
    return settings


def _document() -> dict[str, Any]:
    from beacon import training_settings

    return training_settings.document()


def _human(document: dict[str, Any]) -> str:
    saved = document["saved"]
    shown = document["settings"] or saved  # unreadable: what is saved, then the problem
    width = max((len(name) for name in shown), default=0)
    lines = [f"{name:<{width}}  {_text(value)}" + ("  (saved)" if name in saved else "")
             for name, value in shown.items()]
    if document["problem"]:
        lines.append(f"problem: {document['problem']}")
    if document["updated_by"]:
        when = document["updated_at"].strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"saved by {document['updated_by']} on {when}; smart retrains train "
                     "with these")
    else:
        lines.append("nothing saved: smart retrains train with the built-in defaults")
    return "\n".join(lines)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v:g}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


def show_cmd(args: argparse.Namespace) -> int:
    emit(args, _document(), _human)
    return 0


def set_cmd(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.training_settings import save_training_settings

    save_training_settings(parse_assignments(args.assignments), actor=cli_actor())
    emit(args, _document(), _human)
    return 0


def reset_cmd(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.training_settings import reset_training_settings

    reset_training_settings(args.names or None, actor=cli_actor())
    emit(args, _document(), _human)
    return 0
