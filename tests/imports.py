"""What importing some modules loads, seen from a fresh interpreter (cold-start checks)."""

from __future__ import annotations

import ast
import subprocess
import sys


def loaded_by(imports: str, *prefixes: str) -> list[str]:
    """The modules whose names start with one of `prefixes` after `import <imports>`."""
    probe = (
        f"import sys; import {imports}; "
        f"print(sorted(m for m in sys.modules if m.startswith({prefixes!r})))"
    )
    printed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    modules = ast.literal_eval(printed.strip())
    assert isinstance(modules, list)
    return [str(m) for m in modules]
