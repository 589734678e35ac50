"""`messagedb-agent models`: the model catalogue, and a live check that a model answers.

The listing is the catalogue as the code prices and limits models, so what it shows is what
the agent will do. `check` makes the smallest call that exercises everything a turn needs: a
tool is offered, the model must call it, the result goes back (with Gemini 3's thought
signature), and the model must answer. A deployment whose credentials, region, model name or
quota is wrong fails here in seconds, with the provider's reason, instead of in a user's thread.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from messagedb_agent.cli.common import friendly, load_settings

if TYPE_CHECKING:
    from messagedb_agent.llm.catalogue import ModelInfo, Price
    from messagedb_agent.settings import Settings

models_app = typer.Typer(
    help="The models the agent knows (limits, prices, lifecycle); `check` calls them.",
    invoke_without_command=True,
)

CHECK_TOOL = "echo"
CHECK_WORD = "ping"
CHECK_PROMPT = (
    f"This is a connectivity check. Call the `{CHECK_TOOL}` tool with text "
    f'"{CHECK_WORD}", then reply with one short sentence saying what it returned.'
)
# Room for a thinking model's reasoning as well as the call: a budget too small would be
# reported as a truncated reply, which says nothing about the deployment.
CHECK_OUTPUT_TOKENS = 4096


@models_app.callback()
@friendly
def list_models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalogue as JSON.")] = False,
) -> None:
    """List the models: context window, output limit, prices and lifecycle (* configured)."""
    if ctx.invoked_subcommand is not None:
        return
    from messagedb_agent.llm.catalogue import MODELS, lookup

    settings = load_settings()
    configured = settings.effective_model
    known = lookup(configured)
    if as_json:
        document = {
            "configured": configured,
            "location": settings.model.google_cloud_location,
            "models": [_as_json(info, known is info) for info in MODELS],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(
        f"  {'MODEL':<22} {'PROVIDER':<8} {'WINDOW':>9} {'OUTPUT':>9}  "
        f"{'$/M IN':>6} {'CACHED':>6} {'OUT':>6}  STATUS"
    )
    for info in MODELS:
        mark = "*" if known is info else " "
        price = info.price_on()
        rates = _rates(price) if price else f"{'-':>6} {'-':>6} {'-':>6}"
        typer.echo(
            f"{mark} {info.id:<22} {info.provider:<8} {info.context_window:>9,} "
            f"{info.max_output_tokens:>9,}  {rates}  {info.status()}{_price_notes(info)}"
        )
    where = f"location {settings.model.google_cloud_location}"
    if known is None:
        typer.echo(f"configured: {configured} ({where}; not in the catalogue: no limits or prices)")
    else:
        typer.echo(f"* configured: {configured} ({where})")


@models_app.command("check")
@friendly
def check(
    models: Annotated[
        list[str] | None,
        typer.Argument(help="Models to check (default: the configured one).", show_default=False),
    ] = None,
) -> None:
    """Call each MODEL once with a tool, on Vertex AI (or VERTEX_API_ENDPOINT), and report.

    Exit code 1 when any check fails.
    """
    settings = load_settings()
    failed = False
    for name in models or [settings.effective_model]:
        result = check_model(name, settings)
        failed = failed or not result.ok
        verdict = (
            typer.style("pass", fg=typer.colors.GREEN)
            if result.ok
            else typer.style("FAIL", fg=typer.colors.RED)
        )
        typer.echo(f"{verdict}  {result.model}: {result.detail}")
    if failed:
        raise typer.Exit(1)


@dataclass(frozen=True, slots=True)
class CheckResult:
    model: str
    ok: bool
    detail: str


def check_model(model: str, settings: Settings, credentials: Any = None) -> CheckResult:
    """One tool-calling round trip with `model`, through the clients the engine uses.

    `credentials` are google-auth credentials; None means Application Default Credentials.
    """
    from messagedb_agent.llm.catalogue import lookup, successor
    from messagedb_agent.llm.factory import create_client
    from messagedb_agent.llm.types import (
        AssistantTurn,
        LLMConfig,
        LLMError,
        ToolResult,
        ToolSpec,
        UserTurn,
    )

    name = model.strip()
    if name.lower() == "offline":
        return CheckResult(name, True, "the offline stand-in answers without a network")
    info = lookup(name)
    if info is not None and info.retired():
        instead = successor(info)
        advice = f"; use {instead} instead" if instead else ""
        return CheckResult(name, False, f"retired on {info.retires}{advice}")
    location = settings.model.google_cloud_location
    try:
        client = create_client(
            name,
            project=settings.google_cloud_project,
            location=location,
            base_url=settings.model.vertex_api_endpoint,
            credentials=credentials,
        )
    except ValueError as error:
        return CheckResult(name, False, str(error))
    tool = ToolSpec(
        CHECK_TOOL,
        "Returns the text it is given.",
        {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "Text to return."}},
            "required": ["text"],
        },
    )
    config = LLMConfig(
        model=name,
        max_output_tokens=CHECK_OUTPUT_TOKENS,
        timeout_seconds=settings.engine.llm_timeout_seconds,
    )
    started = time.monotonic()
    first = UserTurn(CHECK_PROMPT)
    try:
        asked = client.call([first], [tool], config)
        calls = [call for call in asked.tool_calls if call.name == CHECK_TOOL]
        if not calls:
            said = " ".join(asked.text.split())[:80]
            return CheckResult(name, False, f"answered without calling the tool: {said!r}")
        call = calls[0]
        answered = client.call(
            [
                first,
                AssistantTurn(asked.text, asked.tool_calls, asked.thought_signatures),
                *(
                    ToolResult(each.id, each.name, {"text": each.arguments.get("text", "")})
                    for each in asked.tool_calls
                ),
            ],
            [tool],
            config,
        )
    except LLMError as error:
        status = f" (HTTP {error.status})" if error.status else ""
        reason = " ".join(str(error).split())
        return CheckResult(name, False, f"{error.kind}{status} at {location}: {reason}")
    if not answered.text.strip():
        return CheckResult(name, False, "called the tool but gave no answer after its result")
    seconds = time.monotonic() - started
    reply = " ".join(answered.text.split())[:60]
    return CheckResult(
        name,
        True,
        f"called {CHECK_TOOL}({json.dumps(call.arguments)}) and answered {reply!r} "
        f"({answered.model_name or name}, {location}, {seconds:.1f} s)",
    )


# -- rendering ----------------------------------------------------------------------------


def _rates(price: Price) -> str:
    cached = _number(price.cached_input) if price.cached_input is not None else "-"
    return f"{_number(price.input):>6} {cached:>6} {_number(price.output):>6}"


def _number(amount: Decimal) -> str:
    """Dollars with cents, and with the fractions of a cent a price has (0.075, 0.0375)."""
    exponent = amount.normalize().as_tuple().exponent
    places = max(2, -exponent if isinstance(exponent, int) else 2)
    return f"{amount:.{places}f}"


def _price_notes(info: ModelInfo) -> str:
    """The price changes still to come, and a long-prompt rate, after the status."""
    from messagedb_agent.llm.catalogue import today

    notes: list[str] = []
    price = info.price_on()
    if price is not None and price.long_prompt is not None:
        long = price.long_prompt
        notes.append(f"above {price.long_prompt_above:,} prompt tokens {_slashed(long)}")
    for period in info.prices:
        if period.since is not None and period.since > today():
            notes.append(f"{_slashed(period.price)} from {period.since}")
    return "".join(f"; {note}" for note in notes)


def _slashed(price: Price) -> str:
    cached = _number(price.cached_input) if price.cached_input is not None else "-"
    return f"${_number(price.input)}/{cached}/{_number(price.output)}"


def _price_json(price: Price | None) -> dict[str, Any] | None:
    if price is None:
        return None
    return {
        "input": float(price.input),
        "cached_input": float(price.cached_input) if price.cached_input is not None else None,
        "output": float(price.output),
        "long_prompt_above": price.long_prompt_above,
        "long_prompt": _price_json(price.long_prompt),
    }


def _as_json(info: ModelInfo, configured: bool) -> dict[str, Any]:
    from messagedb_agent.llm.catalogue import default_context_budget

    return {
        "id": info.id,
        "provider": info.provider,
        "context_window": info.context_window,
        "max_output_tokens": info.max_output_tokens,
        "default_context_budget": default_context_budget(info.id),
        "price": _price_json(info.price_on()),
        "prices": [
            {"since": str(p.since) if p.since else None, **(_price_json(p.price) or {})}
            for p in info.prices
        ],
        "released": str(info.released) if info.released else None,
        "retires": str(info.retires) if info.retires else None,
        "retires_at_earliest": info.retires_at_earliest,
        "replacement": info.replacement,
        "status": info.status(),
        "configured": configured,
        "sources": list(info.sources),
    }
