"""``gridmap users add|list|disable|passwd`` and ``gridmap keys create|list|revoke``.

Secrets are shown once: a generated password or a new API key is printed on stdout and only
its hash is stored. A password of your own is read from stdin (``--password-stdin``), never
from the command line, where other users of the machine could read it. Every change is
written to the audit log under ``--actor`` (default ``cli:<login name>``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from gis.errors import GridmapError
from gis.store.models import USER_ROLES
from gis.timefmt import iso_utc

MIN_PASSWORD: Final = 12


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``users`` and ``keys`` groups."""
    actor = argparse.ArgumentParser(add_help=False)
    actor.add_argument("--actor", help="who to record in the audit log (default cli:<login>)")

    users = subparsers.add_parser("users", help="add, list, disable accounts; set passwords")
    u = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = u.add_parser("add", parents=[actor], help="add an account; prints its password once")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=USER_ROLES)
    add.add_argument("--display-name")
    secret = add.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    secret.add_argument(
        "--no-password", action="store_true", help="a system account: API keys only"
    )
    add.set_defaults(func=_guarded(_users_add))
    ls = u.add_parser("list", help="list accounts (never passwords)")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    ls.set_defaults(func=_guarded(_users_list))
    dis = u.add_parser(
        "disable", parents=[actor], help="disable an account: its tokens and keys end at once"
    )
    dis.add_argument("username")
    dis.set_defaults(func=_guarded(_users_disable))
    pw = u.add_parser(
        "passwd", parents=[actor], help="set a new password (generated unless --password-stdin)"
    )
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw.set_defaults(func=_guarded(_users_passwd))

    keys = subparsers.add_parser("keys", help="create, list, revoke API keys")
    k = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = k.add_parser("create", parents=[actor], help="create a key; prints it once")
    create.add_argument("username", help="the account the key acts as")
    create.add_argument("--name", default="api key", help="what the key is for")
    create.set_defaults(func=_guarded(_keys_create))
    kl = k.add_parser("list", help="list keys by prefix (never the keys)")
    kl.add_argument("--all", action="store_true", help="include revoked keys")
    kl.add_argument("--json", action="store_true", help="one JSON array")
    kl.set_defaults(func=_guarded(_keys_list))
    rv = k.add_parser("revoke", parents=[actor], help="revoke a key at once, by its prefix")
    rv.add_argument("prefix", help="the prefix `keys list` shows (the key's gm_<prefix>_…)")
    rv.set_defaults(func=_guarded(_keys_revoke))


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except GridmapError as exc:
            print(f"gridmap {args.command} {args.action}: {exc.message}", file=sys.stderr)
            return 2

    return run


def _actor(args: argparse.Namespace) -> str:
    if args.actor:
        return str(args.actor)
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password and whether it was generated (then it is printed once)."""
    from gis.errors import InvalidInput

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"The password must have at least {MIN_PASSWORD} characters.")
        return password, False
    return secrets.token_urlsafe(15), True


def _in_session(work: Callable[[Any], Any]) -> Any:
    from api.cli.boundaries import _database

    with _database() as sessions, sessions() as session, session.begin():
        return work(session)


def _now() -> datetime:
    return datetime.now(UTC)


def _users_add(args: argparse.Namespace) -> int:
    from api.security import hash_password
    from services import identities

    password, generated = (None, False) if args.no_password else _password(args)
    digest = hash_password(password) if password else None
    _in_session(
        lambda s: identities.add_user(
            s,
            args.username,
            args.role,
            digest,
            actor=_actor(args),
            now=_now(),
            display_name=args.display_name,
        )
    )
    print(f"added {args.username} ({args.role})", file=sys.stderr)
    if generated:
        print("password (shown once, stored hashed):", file=sys.stderr)
        print(password)
    return 0


def _users_list(args: argparse.Namespace) -> int:
    from services import identities

    accounts = _in_session(identities.list_users)
    rows = [
        {
            "username": a.username,
            "role": a.role,
            "display_name": a.display_name,
            "active": a.active,
            "password": a.has_password,
            "created_at": iso_utc(a.created_at),
        }
        for a in accounts
    ]
    return _print_rows(
        rows,
        args.json,
        ("username", 24),
        ("role", 10),
        ("active", 6),
        ("password", 8),
        ("created_at", 0),
    )


def _print_rows(rows: list[dict[str, Any]], as_json: bool, *columns: tuple[str, int]) -> int:
    """Print rows as one JSON array, or as a table of the given (column, width) pairs."""
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0

    def cell(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "-" if value is None else str(value)

    print(" ".join(name.upper().ljust(width) for name, width in columns).rstrip())
    for r in rows:
        print(" ".join(cell(r[name]).ljust(width) for name, width in columns).rstrip())
    return 0


def _users_disable(args: argparse.Namespace) -> int:
    from services import identities

    _in_session(lambda s: identities.disable_user(s, args.username, actor=_actor(args), now=_now()))
    print(f"disabled {args.username}: its tokens and API keys no longer work", file=sys.stderr)
    return 0


def _users_passwd(args: argparse.Namespace) -> int:
    from api.security import hash_password
    from services import identities

    password, generated = _password(args)
    digest = hash_password(password)
    _in_session(
        lambda s: identities.change_password(
            s, args.username, digest, actor=_actor(args), now=_now()
        )
    )
    print(f"password of {args.username} changed; its earlier tokens end now", file=sys.stderr)
    if generated:
        print("password (shown once, stored hashed):", file=sys.stderr)
        print(password)
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from api.security import new_api_key
    from services import identities

    key, prefix, key_hash = new_api_key()
    _in_session(
        lambda s: identities.create_key(
            s, args.username, args.name, prefix, key_hash, actor=_actor(args), now=_now()
        )
    )
    print(f"key {prefix} for {args.username} (shown once, stored hashed):", file=sys.stderr)
    print(key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from services import identities

    keys = _in_session(lambda s: identities.list_keys(s, include_revoked=args.all))
    rows = [
        {
            "prefix": k.prefix,
            "user": k.username,
            "name": k.name,
            "created_at": iso_utc(k.created_at),
            "last_used_at": iso_utc(k.last_used_at),
            "revoked_at": iso_utc(k.revoked_at),
        }
        for k in keys
    ]
    return _print_rows(
        rows,
        args.json,
        ("prefix", 14),
        ("user", 20),
        ("created_at", 22),
        ("revoked_at", 22),
        ("name", 0),
    )


def _keys_revoke(args: argparse.Namespace) -> int:
    from services import identities

    owner = _in_session(
        lambda s: identities.revoke_key(s, args.prefix, actor=_actor(args), now=_now())
    )
    print(f"revoked key {args.prefix} of {owner}; it stops working at once", file=sys.stderr)
    return 0
