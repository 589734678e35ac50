"""The safety net: sweep the `thread` category and re-announce every stream that needs a step."""
