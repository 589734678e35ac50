"""The `messagedb-agent` command."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from messagedb_agent.config import Settings
from messagedb_agent.store import StoreError

app = typer.Typer(
    help="An event-sourced AI agent whose whole memory is a Message DB event log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Manage the database: install Message DB, check it, stop the local server.", no_args_is_help=True)
app.add_typer(db_app, name="db")

P = ParamSpec("P")
R = TypeVar("R")


def _friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn known failures into one line on stderr and exit code 1, never a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (StoreError, ValueError) as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper


def _settings() -> Settings:
    """The validated settings, or one `error:` line per bad variable and exit code 2.

    pydantic's own message spans several lines per variable and can echo the value, which
    for DATABASE_URL holds a password; only the variable and the reason are shown.
    """
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        for problem in exc.errors():
            variable = "_".join(str(part) for part in problem["loc"]).upper() or "configuration"
            reason = " ".join(str(problem["msg"]).removeprefix("Value error, ").split())
            typer.secho(f"error: {variable}: {reason}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # e.g. an unreadable .env file
        reason = " ".join(str(exc).split())
        typer.secho(f"error: invalid configuration: {reason}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _progress(message: str) -> None:
    typer.echo(message, err=True)


@db_app.command("install")
@_friendly
def db_install(
    repair: Annotated[
        bool, typer.Option(help="Complete a half-installed Message DB, keeping its messages.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
) -> None:
    """Install Message DB 1.3.1 (from npm, integrity-checked) into DATABASE_URL or the embedded server.

    Running it again changes nothing and says so.
    """
    from messagedb_agent.store.database import database_url, ensure_installed
    from messagedb_agent.store.installer import VERSION

    settings = _settings()
    url = database_url(settings)
    report = ensure_installed(
        url, settings, repair=repair, progress=None if quiet else _progress
    )
    typer.echo(report.summary().replace(f"Message DB {report.version}", f"Message DB {VERSION} (schema {report.version})"))


@db_app.command("status")
@_friendly
def db_status() -> None:
    """Check that the database answers and report its Message DB version."""
    from messagedb_agent.store.client import redact
    from messagedb_agent.store.database import database_url, open_store

    settings = _settings()
    url = database_url(settings)
    with open_store(settings, url) as store:
        health = store.health()
    if not health.ok:
        typer.secho(f"unhealthy: {health.detail}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(
        f"ok: PostgreSQL {health.server_version}, Message DB schema "
        f"{health.message_store_version} at {redact(url)}"
    )


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL server (its data stays)."""
    from messagedb_agent.store import local_server

    settings = _settings()
    if local_server.stop(settings.home):
        typer.echo(f"stopped the embedded server in {settings.home / 'pgdata'}")
    else:
        typer.echo("the embedded server is not running")


@app.command("demo-store")
@_friendly
def demo_store() -> None:
    """Write a short thread to Message DB, read it back and print it."""
    from messagedb_agent import events as ev
    from messagedb_agent.projections import project_llm_context, project_session_state
    from messagedb_agent.store import stream_name
    from messagedb_agent.store.database import database_url, ensure_installed, open_store

    settings = _settings()
    url = database_url(settings)
    typer.echo(ensure_installed(url, settings).summary())
    stream = stream_name.thread_stream(uuid.uuid4())
    meta = ev.Metadata(correlation_stream_name=stream, user_id="demo-user")
    now = datetime.now(UTC)
    facts: list[ev.Event] = [
        ev.SessionStarted(thread_id=stream_name.thread_id_of(stream).hex, owner="demo-user"),
        ev.UserMessageAdded(message="Hello! What can you do?", timestamp=now),
    ]
    with open_store(settings, url) as store:
        store.write_messages(stream, [ev.to_message(f, meta) for f in facts], expected_version=-1)
        recorded = ev.from_messages(store.read_stream(stream))
    typer.echo(f"\nstream {stream}:")
    for r in recorded:
        typer.echo(f"  #{r.position} {r.type:<20} {r.event.model_dump_json(exclude_none=True)}")
    state = project_session_state(recorded)
    context = project_llm_context(recorded)
    typer.echo(f"\nstatus={state.status} messages={state.message_count} owner={state.owner}")
    typer.echo(f"LLM context: {[type(m).__name__ for m in context.messages]}")


def main(argv: list[str] | None = None) -> Any:
    return app(args=argv if argv is not None else sys.argv[1:])
