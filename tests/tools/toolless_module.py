"""A module with functions but no `@tool`: naming it in `TOOL_MODULES` is a mistake."""


def not_a_tool() -> None:
    """Undecorated, so the engine must not offer it."""
