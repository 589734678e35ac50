"""Choosing the `LLMClient` for a model name, without importing SDKs the choice does not need.

The provider modules import their SDKs (`google.genai`, `anthropic`) at their top, and are
imported here only when chosen: the offline model and every cold start that does not use a
provider stay free of those heavy imports.
"""

from __future__ import annotations

from typing import Any

from messagedb_agent.llm.offline import OfflineModel
from messagedb_agent.llm.types import LLMClient

ACCEPTED_FORMS = (
    '"offline" (the deterministic stand-in), "gemini-*" (e.g. gemini-3.8-flash) or '
    '"claude-*" (e.g. claude-sonnet-5-5); see messagedb-agent models'
)


def create_client(
    model: str,
    *,
    project: str | None,
    location: str,
    base_url: str | None = None,
    credentials: Any = None,
    offline_word_delay: float = 0.0,
) -> LLMClient:
    """The client for `model`; `base_url` overrides the Vertex endpoint root (tests, proxies).

    `credentials` are google-auth credentials; None means Application Default Credentials.
    """
    name = model.strip().lower()
    if name == "offline":
        return OfflineModel(word_delay=offline_word_delay)
    if not name.startswith(("gemini", "claude")):
        raise ValueError(f"Unknown model {model!r}: MODEL_NAME must be {ACCEPTED_FORMS}.")
    if not project:
        raise ValueError(
            f"Model {model!r} runs on Vertex AI and needs a Google Cloud project: set "
            "GOOGLE_CLOUD_PROJECT (or use MODEL_NAME=offline to run without one)."
        )
    if name.startswith("gemini"):
        from messagedb_agent.llm.gemini import GeminiModel

        return GeminiModel(
            project=project, location=location, base_url=base_url, credentials=credentials
        )
    from messagedb_agent.llm.claude import ClaudeModel

    return ClaudeModel(
        project=project, location=location, base_url=base_url, credentials=credentials
    )
