"""`api-keys create|list|revoke`: keys for the HTTP API (the secret is shown once)."""
from __future__ import annotations

import argparse

from beacon.cli.common import add_json_flag, emit


def register(subparsers) -> None:
    parser = subparsers.add_parser("api-keys", help="API keys for the HTTP API")
    commands = parser.add_subparsers(dest="api_keys_command", required=True, metavar="ACTION")
    create = commands.add_parser("create", help="make a key (its secret is printed once)")
    create.add_argument("name", help="who or what uses it, e.g. platform-backend")
    create.add_argument("--scopes", required=True,
                        help="comma separated: recommend, ingest, admin")
    add_json_flag(create)
    create.set_defaults(handler=run_create)
    listing = commands.add_parser("list", help="every key (never a secret)")
    add_json_flag(listing)
    listing.set_defaults(handler=run_list)
    revoke = commands.add_parser("revoke", help="refuse a key from the next request on")
    revoke.add_argument("name", help="the key's name")
    add_json_flag(revoke)
    revoke.set_defaults(handler=run_revoke)


def run_create(args: argparse.Namespace) -> int:
    from beacon.api_keys import create_key

    from beacon.actions import cli_actor

    created = create_key(args.name, args.scopes, actor=cli_actor())
    payload = {**created.info.to_json(), "key": created.secret}
    emit(args, payload, lambda p: (
        f"API key {p['name']!r} ({', '.join(p['scopes'])}):\n{p['key']}\n"
        "Store it now: it is shown only this once."))
    return 0


def _line(key: dict) -> str:
    from beacon.api_keys import KEY_PREFIX

    state = "revoked " + key["revoked_at"][:19] if key["revoked_at"] else "active"
    used = key["last_used_at"][:19] if key["last_used_at"] else "never"
    return (f"{key['name']:<24} {KEY_PREFIX}{key['prefix']}_… {','.join(key['scopes']):<24} "
            f"{state:<28} "
            f"created {key['created_at'][:19]} by {key['created_by'] or '?'}, last used {used}")


def run_list(args: argparse.Namespace) -> int:
    from beacon.api_keys import list_keys

    keys = [k.to_json() for k in list_keys()]
    emit(args, {"keys": keys}, lambda p: "\n".join(_line(k) for k in p["keys"]) or "no API keys")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from beacon.api_keys import revoke_key

    from beacon.actions import cli_actor

    key = revoke_key(args.name, actor=cli_actor()).to_json()
    emit(args, key, lambda k: f"revoked API key {k['name']!r}")
    return 0
