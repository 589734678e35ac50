"""Pure functions from a list of events to a value: no I/O, no clock, unknown events skipped."""

from messagedb_agent.projections.llm_context import LLMContext, project_llm_context
from messagedb_agent.projections.next_step import NextStep, Policy, StepKind, project_next_step
from messagedb_agent.projections.pending_tools import project_pending_tool_calls
from messagedb_agent.projections.session_state import SessionState, project_session_state

__all__ = [
    "LLMContext",
    "NextStep",
    "Policy",
    "SessionState",
    "StepKind",
    "project_llm_context",
    "project_next_step",
    "project_pending_tool_calls",
    "project_session_state",
]
