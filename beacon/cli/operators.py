"""`beacon operators add|list|set-role|disable|enable|reset-password`: who may use the console.

The command line acts as `cli:<os user>` with admin rights (whoever holds the database URL);
every change is audited under that name. A password made here is printed once, on stdout."""
from __future__ import annotations

import argparse

from beacon.cli.common import add_json_flag, emit

ROLES_HELP = "viewer (reads), operator (plus train, cancel, fold-in, refresh), admin (all)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("operators", help="manage who may sign in to the console")
    commands = parser.add_subparsers(dest="operators_command", required=True, metavar="ACTION")

    add = commands.add_parser("add", help="add an operator (prints a one-time password)")
    add.add_argument("email")
    add.add_argument("--role", default="viewer", help=ROLES_HELP)
    add.add_argument("--name")
    add.add_argument("--sso-only", action="store_true",
                     help="no password: signs in only through single sign-on (OIDC)")
    add_json_flag(add)
    add.set_defaults(handler=add_cmd)

    listing = commands.add_parser("list", help="list operators")
    add_json_flag(listing)
    listing.set_defaults(handler=list_cmd)

    role = commands.add_parser("set-role", help="change an operator's role")
    role.add_argument("email")
    role.add_argument("role", help=ROLES_HELP)
    add_json_flag(role)
    role.set_defaults(handler=role_cmd)

    for name, disabled, text in (("disable", True, "stop an operator from signing in"),
                                 ("enable", False, "let a disabled operator sign in again")):
        command = commands.add_parser(name, help=text)
        command.add_argument("email")
        add_json_flag(command)
        command.set_defaults(handler=disable_cmd, disabled=disabled)

    reset = commands.add_parser("reset-password",
                                help="give an operator a new random password (printed once)")
    reset.add_argument("email")
    reset.add_argument("--allow-password", action="store_true",
                       help="also for an operator who signs in only through single sign-on")
    add_json_flag(reset)
    reset.set_defaults(handler=reset_cmd)


def _line(info: dict) -> str:
    state = "disabled" if info["disabled"] else "enabled"
    how = "password" if info["has_password"] else "single sign-on only"
    return f"{info['email']}  {info['role']}  {state}  ({how})"


def add_cmd(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.operators import add_operator

    info, password = add_operator(args.email, role=args.role, name=args.name,
                                  sso_only=args.sso_only, actor=cli_actor())
    payload = {**info.to_dict(), "password": password}
    emit(args, payload, lambda p: f"added {_line(p)}" + (
        f"\none-time password (shown only now): {p['password']}" if p["password"] else ""))
    return 0


def list_cmd(args: argparse.Namespace) -> int:
    from beacon.operators import list_operators

    payload = [o.to_dict() for o in list_operators()]
    emit(args, payload, lambda rows: "\n".join(_line(r) for r in rows) or "no operators")
    return 0


def role_cmd(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.operators import set_role

    info = set_role(args.email, args.role, actor=cli_actor())
    emit(args, info.to_dict(), _line)
    return 0


def disable_cmd(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.operators import set_disabled

    info = set_disabled(args.email, disabled=args.disabled, actor=cli_actor())
    emit(args, info.to_dict(), _line)
    return 0


def reset_cmd(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.operators import reset_password

    password = reset_password(args.email, allow_password=args.allow_password, actor=cli_actor())
    emit(args, {"email": args.email.strip().lower(), "password": password},
         lambda p: f"new password for {p['email']} (shown only now): {p['password']}")
    return 0
