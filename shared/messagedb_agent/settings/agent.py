"""The agent's own settings: the model, the turn's limits, tools, replies, and prices."""

from __future__ import annotations

import json
from decimal import Decimal

from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.dataclasses import dataclass

from messagedb_agent.settings.section import Section

# Generally available, not retiring before 2027-09-02, Google's named replacement for
# gemini-2.5-flash, and served on the global endpoint (see llm/catalogue.py).
DEFAULT_MODEL = "gemini-3.8-flash"


# -- the agent -------------------------------------------------------------------------------


class ModelSettings(Section):
    """Which model answers, and where (the project is GOOGLE_CLOUD_PROJECT)."""

    google_cloud_location: str = Field(
        default="global",
        description="Vertex AI location: `global` (any region with capacity), a multi-region "
        "(`us`, `eu`) or a region; the model's page lists where it is served.",
    )
    model_name: str = Field(
        default="",
        description=f"`gemini-...`, `claude-...` (Vertex AI) or `offline`; empty picks "
        f"{DEFAULT_MODEL} when GOOGLE_CLOUD_PROJECT is set, else offline.",
    )
    vertex_api_endpoint: str | None = Field(
        default=None, description="Override the Vertex AI base URL (private endpoints, tests)."
    )
    system_prompt: str | None = Field(default=None, description="Replaces the default prompt.")
    offline_word_delay_ms: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="The offline model streams its replies a word at a time with this pause, "
        "as a real model streams tokens (the local stack sets 40); 0 answers at once.",
    )

    @field_validator("model_name")
    @classmethod
    def _not_retired(cls, value: str) -> str:
        """A retired model would fail every call with a 404 once deployed; refusing it at
        start names the replacement before a single thread waits on it."""
        if not value.strip():
            return value
        from messagedb_agent.llm.catalogue import retired_problem  # stdlib only

        problem = retired_problem(value.strip())
        if problem is not None:
            raise ValueError(problem)
        return value


@dataclass(frozen=True, config=ConfigDict(defer_build=True))  # built when MCP_SERVERS is set
class McpServerConfig:
    """One MCP server to start: `env` is added to the SDK's safe default environment
    (PATH, HOME and the like), never the whole environment of this process."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
    command: list[str] = Field(min_length=1)
    env: dict[str, str] | None = None


def servers_from_json(text: str) -> list[McpServerConfig]:
    """Configs from JSON such as `[{"name": "files", "command": ["npx", "some-server"]}]`."""
    return TypeAdapter(list[McpServerConfig]).validate_json(text)


class EngineSettings(Section):
    """The step protocol: limits, leases, timeouts, and the tools beyond the built-in ones."""

    max_iterations: int = Field(default=10, ge=1, le=100, description="Model calls per user turn.")
    max_llm_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries of one model call before the turn fails."
    )
    max_tool_attempts: int = Field(
        default=2, ge=1, le=10, description="Tries of one tool call before it is reported failed."
    )
    llm_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="How long a claimed model call is held before another step may retry it.",
    )
    tool_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long a claimed tool call is held before another step may retry it.",
    )
    llm_timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, description="Longest wait for one model answer."
    )
    tool_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600, description="Longest wait for one tool result."
    )
    step_max_steps: int = Field(
        default=25,
        ge=1,
        le=200,
        description="Steps one step-function delivery may run in a row (one commit each).",
    )
    step_budget_seconds: float = Field(
        default=60.0,
        gt=0,
        le=540,
        description="After this long a delivery stops chaining and hands on to a new one.",
    )
    context_budget_tokens: int | None = Field(
        default=None,
        ge=500,
        le=10_000_000,
        description="Tokens a model call's context may use before older turns are summarised; "
        "unset takes a share of each model's context window from the catalogue.",
    )
    tool_result_max_chars: int = Field(
        default=20_000,
        ge=200,
        le=2_000_000,
        description="Longest tool result the model is shown (the event keeps all of it).",
    )
    max_output_tokens: int = Field(
        default=8192, ge=16, le=1_000_000, description="Output budget of a model call."
    )
    max_output_tokens_ceiling: int = Field(
        default=32_768,
        ge=16,
        le=1_000_000,
        description="A reply cut at the budget is asked for again with twice the budget, up to this.",
    )
    model_unavailable_retry_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="How long a thread waits, when the model cannot be used (credentials, "
        "permissions, model name, quota), before it tries again.",
    )
    view_cache_events: int = Field(
        default=50_000,
        ge=0,
        le=5_000_000,
        description="Events of recently driven threads a warm instance keeps in memory.",
    )
    mcp_servers: str | None = Field(
        default=None,
        description="JSON list of MCP servers whose tools the agent may use: "
        '[{"name": "files", "command": ["python", "-m", "server"]}]',
    )
    tool_modules: str | None = Field(
        default=None,
        description="Comma-separated Python modules whose @tool functions the agent may use, "
        "beside the built-in ones: myproject.tools,myproject.billing",
    )
    tools_requiring_approval: str = Field(
        default="delete_task",
        description="Comma-separated names of tools (MCP tools included; * and ? match any "
        "characters) whose calls wait for the thread owner's approval before they run; empty: "
        "none beyond those declared with @tool(approval=True).",
    )
    tool_approval_ttl_seconds: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86_400,
        description="How long a call may wait for approval before it is denied as expired; "
        "unset: it waits for ever.",
    )

    @property
    def approval_patterns(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.tools_requiring_approval.split(",") if n.strip())

    @field_validator("mcp_servers")
    @classmethod
    def _server_list(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        try:
            servers_from_json(value)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise ValueError(
                f"MCP_SERVERS is not a valid server list ({where}: {problem['msg']})"
            ) from None
        return value

    @field_validator("tool_modules")
    @classmethod
    def _modules_exist(cls, value: str | None) -> str | None:
        """A module name that is misspelt or not installed stops every function and command
        at start, naming it, instead of at the first step. The module is looked up here, not
        run (its parent packages are imported); its tools are collected when the engine is
        built."""
        if not value or not value.strip():
            return None
        import importlib.util  # stdlib; the check runs only when the setting is given

        for name in dict.fromkeys(n.strip() for n in value.split(",") if n.strip()):
            try:
                found = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                found = None
            if found is None:
                raise ValueError(
                    f"TOOL_MODULES names {name!r}, which cannot be imported: no module of that "
                    f"name is on the Python path{_in_this_folder(name)}"
                )
        return value


def _in_this_folder(name: str) -> str:
    """The usual cause for a newcomer: the module sits in the current folder, which a console
    script (unlike `python -m`) does not put on the path."""
    from pathlib import Path  # stdlib; only on the error path

    top = name.split(".")[0]
    here = Path.cwd()
    if (here / f"{top}.py").is_file() or (here / top / "__init__.py").is_file():
        return f"; it is in {here}, which is not on the path: run with PYTHONPATH=. set"
    return ""


class CallbackSettings(Section):
    """Reply deliveries to the callback URLs threads name."""

    callback_signing_secret: SecretStr = Field(
        default=SecretStr("dev-only-callback-secret-change-me"),
        description="HMAC-SHA256 key that signs reply deliveries to callback URLs.",
    )
    delivery_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="Longest wait for a callback URL to answer."
    )
    max_delivery_attempts: int = Field(
        default=5, ge=1, le=20, description="Tries of one reply delivery before it is given up."
    )
    busy_notice_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="A chat platform's turn still running this long after the person's "
        'message is told "Working on it…" (Slack, Google Chat), a message the reply then '
        "replaces; 0: never.",
    )
    callback_allow_private: bool = Field(
        default=False,
        description="Accept callback URLs on private, loopback and link-local addresses, and "
        "plain http: local development only, never in Cloud (it lets callers reach internal "
        "services).",
    )


class ThreadSettings(Section):
    """What a thread accepts, whoever writes to it (the API or the CLI), and where it lives."""

    max_message_length: int = Field(
        default=5000, ge=1, le=100_000, description="Longest user message, in characters."
    )
    thread_shards: int = Field(
        default=16,  # stream_name.DEFAULT_THREAD_SHARDS; settings import nothing of the library
        ge=1,
        le=256,
        description="Categories new threads are spread over (thread_00 ..), each with its own "
        "write lock and relay cursor. Raise it, never lower it: the relay covers shards below "
        "it, and a thread's shard is fixed in its id.",
    )
    archive_url: str | None = Field(
        default=None,
        description="Where `messagedb-agent archive` exports idle threads: gs://bucket/prefix "
        "(Cloud Storage), file:///path or a folder; unset is .local/archive/ under "
        "MESSAGEDB_AGENT_HOME. Restores read each thread from where it was exported.",
    )


class PriceConfig(Section):
    input: Decimal = Field(ge=0, description="USD per million input tokens.")
    output: Decimal = Field(ge=0, description="USD per million output tokens.")
    cached_input: Decimal | None = Field(
        default=None,
        ge=0,
        description="USD per million input tokens served from the prompt cache; unset bills "
        "them as input.",
    )


class PriceSettings(Section):
    """What model calls cost, when the catalogue's list prices are not what you pay."""

    model_prices: dict[str, PriceConfig] = Field(
        default_factory=dict,
        description='JSON `{"model": {"input": 0.3, "output": 2.5, "cached_input": 0.03}}`, '
        "USD per million tokens, laid over the catalogue's list prices (a model named here "
        "replaces its price, for every date, and prices its versioned names too).",
    )

    @field_validator("model_prices", mode="before")
    @classmethod
    def _from_json(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value
