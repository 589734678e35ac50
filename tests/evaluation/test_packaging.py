"""The eval set ships inside the wheel, where `load_eval_set()` looks for it."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from messagedb_agent.deploy.packaging import PROJECT_ROOT, find_uv
from messagedb_agent.evaluation.cases import DEFAULT_SET, default_set_path


@pytest.mark.slow
def test_the_wheel_carries_the_eval_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    built = subprocess.run(
        [find_uv(), "build", "--wheel", "--out-dir", str(tmp_path), str(PROJECT_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = archive.read(f"messagedb_agent/evaluation/{DEFAULT_SET}")
    assert packaged == default_set_path().read_bytes()
