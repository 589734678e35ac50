"""Give the functions' IAM database users what Message DB gives its own role, nothing more.

Message DB's installer creates the `message_store` role and grants it the schema, the table
and the functions. Cloud SQL creates an IAM user per function service account with no
privileges at all, so after the install each one is made a member of `message_store`. The
installer's own tables in schema `agent` (the idempotent answers: `postgres/agent_schema.py`)
are granted to `message_store` by the installer, so membership is all they need. The ingest
function also keeps its rate limits in `agent`, created on first use, so it is allowed to
create schemas in the database.

Message DB's functions name its tables and helpers without a schema (`write_message` calls
`acquire_lock`, which inserts into `messages`), so every session needs
`search_path = message_store, public`. A role's settings are not inherited through membership,
so each user gets its own, for this database (`ALTER ROLE ... IN DATABASE ... SET`): a session
then has it whatever its connection says. A connection-string `options=-c search_path=...`
would do too, but a pooler in transaction mode (Cloud SQL Managed Connection Pooling, PgBouncer)
may refuse or drop startup options, while a role's settings always apply.

Run by the installer job after `messagedb-agent db install`, as the built-in administrator:

    python -m messagedb_agent.deploy.database_users --member USER ... --schema-creator USER

Every statement is idempotent, so running it again changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from messagedb_agent.settings import Settings
from messagedb_agent.store.diagnosis import describe_connection_error

MESSAGE_STORE_ROLE = "message_store"  # created by Message DB's roles/message-store.sql
SEARCH_PATH = "message_store, public"  # what Message DB's unqualified names need


class GrantError(RuntimeError):
    """A grant could not be made; the message names the cause and the fix."""


@dataclass(frozen=True)
class GrantReport:
    database: str
    granted: list[str] = field(default_factory=list)  # what was newly granted
    unchanged: list[str] = field(default_factory=list)  # what each user already had

    def summary(self) -> str:
        if not self.granted:
            return f"database users of {self.database}: nothing to change"
        return f"database users of {self.database}: " + "; ".join(self.granted)


def grant(url: str, members: Sequence[str], schema_creators: Sequence[str] = ()) -> GrantReport:
    """Make each member a `message_store` member, give every user Message DB's search_path in
    this database, and let each schema creator create schemas."""
    users = list(dict.fromkeys([*members, *schema_creators]))
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise GrantError(describe_connection_error(exc, url)) from exc
    with conn:
        database = str(_one(conn, "SELECT current_database()"))
        report = GrantReport(database)
        if not _one(conn, "SELECT count(*) FROM pg_roles WHERE rolname = %s", MESSAGE_STORE_ROLE):
            raise GrantError(
                f"role {MESSAGE_STORE_ROLE} does not exist in {database}: Message DB is not "
                "installed. Fix: run `messagedb-agent db install` first"
            )
        for user in users:
            if not _one(conn, "SELECT count(*) FROM pg_roles WHERE rolname = %s", user):
                raise GrantError(
                    f"database user {user} does not exist. Fix: create it first (Terraform's "
                    "google_sql_user, or `gcloud sql users create USER --type=cloud_iam_service_account`)"
                )
        for user in users:
            if _one(conn, "SELECT pg_has_role(%s, %s, 'MEMBER')", user, MESSAGE_STORE_ROLE):
                report.unchanged.append(f"{user} is a {MESSAGE_STORE_ROLE} member")
            else:
                conn.execute(
                    sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(MESSAGE_STORE_ROLE), sql.Identifier(user)
                    )
                )
                report.granted.append(f"{user} joins {MESSAGE_STORE_ROLE}")
        for user in users:
            if _search_path(conn, user, database) == SEARCH_PATH:
                report.unchanged.append(f"{user} has search_path {SEARCH_PATH}")
            else:
                report.granted.append(_set_search_path(conn, user, database))
        for user in dict.fromkeys(schema_creators):
            if _one(conn, "SELECT has_database_privilege(%s, %s, 'CREATE')", user, database):
                report.unchanged.append(f"{user} may create schemas")
            else:
                conn.execute(
                    sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                        sql.Identifier(database), sql.Identifier(user)
                    )
                )
                report.granted.append(f"{user} may create schemas")
    return report


def _search_path(conn: psycopg.Connection, user: str, database: str) -> str | None:
    """The search_path a new session of `user` in `database` starts with, when a role or
    database setting gives one: the role's own for this database first, as PostgreSQL applies
    them, then the database's."""
    row = conn.execute(
        "SELECT setting FROM pg_db_role_setting s, unnest(s.setconfig) AS setting"
        " WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)"
        " AND s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = %s))"
        " AND setting LIKE 'search_path=%%'"
        " ORDER BY s.setrole DESC LIMIT 1",
        (database, user),
    ).fetchone()
    return None if row is None else str(row[0]).removeprefix("search_path=")


def _set_search_path(conn: psycopg.Connection, user: str, database: str) -> str:
    """Set it on the role, for this database; where the administrator may not alter that role
    (PostgreSQL 16+ asks for ADMIN OPTION on it), on the database instead, for every user."""
    path = sql.SQL(", ").join(sql.Identifier(schema) for schema in SEARCH_PATH.split(", "))
    try:
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}").format(
                sql.Identifier(user), sql.Identifier(database), path
            )
        )
    except psycopg.errors.InsufficientPrivilege:
        try:
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET search_path = {}").format(
                    sql.Identifier(database), path
                )
            )
        except psycopg.errors.InsufficientPrivilege as exc:
            raise GrantError(
                f"cannot set search_path for {user}: neither the role nor the database "
                f"{database} may be altered by {conn.info.user}. Fix: run this as the "
                "database's owner (on Cloud SQL, the built-in postgres user)"
            ) from exc
        return f"{database} gets search_path {SEARCH_PATH} (for {user})"
    return f"{user} gets search_path {SEARCH_PATH}"


def _one(conn: psycopg.Connection, query: str, *params: object) -> object:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m messagedb_agent.deploy.database_users",
        description="Grant the functions' database users Message DB's role (DATABASE_URL).",
    )
    parser.add_argument(
        "--member", action="append", default=[], help="a user to make a message_store member"
    )
    parser.add_argument(
        "--schema-creator",
        action="append",
        default=[],
        help="a user that may also create schemas (ingest's rate limits)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.member and not args.schema_creator:
        parser.error("name at least one --member or --schema-creator")
    url = Settings().database.database_url
    if url is None:
        print("error: DATABASE_URL is not set. Fix: point it at the database.", file=sys.stderr)
        return 2
    try:
        report = grant(url, args.member, args.schema_creator)
    except GrantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
