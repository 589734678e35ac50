"""Each step-protocol invariant's mechanism, removed in turn, must make an engine test fail.

Runs on a scratch copy of the committed tree (git archive), one mutation at a time, and exits
non-zero if any mutation survives: a test that passes without the mechanism it is meant to
prove would be a check that cannot fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEP = "shared/messagedb_agent/engine/step.py"
NEXT = "shared/messagedb_agent/projections/next_step.py"
CONTEXT = "shared/messagedb_agent/projections/llm_context.py"

# invariant -> (file, what the mechanism looks like, the same line without it)
MUTATIONS = {
    "1 effects: result ids are random": (
        STEP,
        'message_id(step_id, "response")',
        "str(__import__('uuid').uuid4())",
    ),
    "2 paid calls: claims ignore expected_version": (
        STEP,
        "head.stream_name, batch, expected_version=head.position",
        "head.stream_name, batch, expected_version=None",
    ),
    "3 stalls: leases never expire": (
        NEXT,
        "if p.llm_lease is not None and now < p.llm_lease:",
        "if p.llm_lease is not None:",
    ),
    "4 stale: old notifications are processed": (
        STEP,
        "if notification.position != view.head.position:",
        "if notification.position > view.head.position:",
    ),
    "5 mid-turn: a response is placed at its own position": (
        CONTEXT,
        "key = (anchor, 1, recorded.position)",
        "key = (recorded.position, 1, recorded.position)",
    ),
    "6 failures: model errors are not recorded": (
        STEP,
        "except LLMError as error:",
        "except ZeroDivisionError as error:",
    ),
    "7 users: the owner comes from the model's arguments": (
        STEP,
        "owner = view.owner",
        "owner = str(decision.tool_calls[0].arguments.get('user_id', view.owner))"
        " if decision.tool_calls else view.owner",
    ),
}


def main() -> int:
    python = REPO / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD"], cwd=REPO, capture_output=True, check=True
        ).stdout
        tar_path = root / "tree.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(root / "tree", filter="data")
        tree = root / "tree"
        env = {**os.environ, "PYTHONPATH": f"{tree / 'shared'}{os.pathsep}{tree}"}
        survivors = []
        for name, (rel, old, new) in MUTATIONS.items():
            path = tree / rel
            original = path.read_text()
            if old not in original:
                print(f"{name}: the mechanism's code was not found in {rel}; update this list")
                return 2
            path.write_text(original.replace(old, new))
            try:
                result = subprocess.run(
                    [
                        str(python),
                        "-m",
                        "pytest",
                        "-q",
                        "-x",
                        "-p",
                        "no:cacheprovider",
                        "tests/engine",
                    ],
                    cwd=tree,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                )
            finally:
                path.write_text(original)
            failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
            if failed:
                print(f"caught    {name}: {failed[0].split('::')[-1].split(' - ')[0]}")
            else:
                print(f"SURVIVED  {name}")
                survivors.append(name)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
