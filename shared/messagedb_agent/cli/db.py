"""`messagedb-agent db`: install Message DB, check it, stop the local server."""

from __future__ import annotations

from typing import Annotated

import typer

from messagedb_agent.cli.common import friendly, load_settings, progress

db_app = typer.Typer(
    help="Manage the database: install Message DB, check it, stop the local server.",
    no_args_is_help=True,
)


@db_app.command("install")
@friendly
def db_install(
    repair: Annotated[
        bool, typer.Option(help="Complete a half-installed Message DB, keeping its messages.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
) -> None:
    """Install Message DB 1.3.1 (from npm, integrity-checked) into DATABASE_URL or the embedded server.

    Running it again changes nothing and says so.
    """
    from messagedb_agent.postgres.connect import database_url, ensure_installed
    from messagedb_agent.postgres.installer import VERSION

    settings = load_settings()
    url = database_url(settings)
    report = ensure_installed(url, settings, repair=repair, progress=None if quiet else progress)
    typer.echo(
        report.summary().replace(
            f"Message DB {report.version}", f"Message DB {VERSION} (schema {report.version})"
        )
    )


@db_app.command("status")
@friendly
def db_status() -> None:
    """Check that the database answers and report its Message DB version."""
    from messagedb_agent.postgres.connect import database_url, open_store
    from messagedb_agent.store.diagnosis import redact

    settings = load_settings()
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
    from messagedb_agent.postgres import embedded

    settings = load_settings()
    if embedded.stop(settings.local.home):
        typer.echo(f"stopped the embedded server in {settings.local.home / 'pgdata'}")
    else:
        typer.echo("the embedded server is not running")
