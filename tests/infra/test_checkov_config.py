"""checkov runs on infra/ in CI, pinned, and every finding it accepts says why.

`make test` runs `make checkov` (installed from infra/checkov/requirements.txt, every file
hashed, into a virtualenv of its own) with .checkov.yaml, and any failed check fails the build.
"""

from __future__ import annotations

import re

import yaml
from tests.infra.hcl import ROOT

CONFIG = ROOT / ".checkov.yaml"
REQUIREMENTS = ROOT / "infra" / "checkov" / "requirements.txt"
CHECK_ID = re.compile(r"CKV2?_[A-Z]+_\d+")


def _config() -> dict[str, object]:
    loaded = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_checkov_scans_the_terraform_offline_and_fails_on_any_finding() -> None:
    config = _config()
    assert config["directory"] == ["infra"]
    assert config["framework"] == ["terraform"]
    assert config["skip-download"] is True
    assert not config.get("soft-fail"), "a finding must fail the build"
    assert not config.get("hard-fail-on"), "no severity threshold: every failed check counts"


def test_every_accepted_finding_is_one_check_with_its_reason() -> None:
    skipped = _config()["skip-check"]
    assert isinstance(skipped, list)
    assert all(isinstance(s, str) and CHECK_ID.fullmatch(s) for s in skipped), skipped
    assert len(skipped) == len(set(skipped))
    lines = CONFIG.read_text(encoding="utf-8").splitlines()
    for check in skipped:
        (index,) = [i for i, line in enumerate(lines) if line.strip() == f"- {check}"]
        reason = []
        for line in reversed(lines[:index]):
            if not line.strip().startswith("#"):
                break
            reason.append(line.strip().lstrip("# "))
        assert len(" ".join(reason)) >= 80, f"{check} is skipped without a reason"


def test_make_test_runs_checkov_pinned_and_hashed() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    test_target = re.search(r"^test:([^#\n]*)", makefile, re.MULTILINE)
    assert test_target is not None
    assert "checkov" in test_target.group(1).split()
    assert "--config-file .checkov.yaml" in makefile
    assert "--require-hashes" in makefile
    text = REQUIREMENTS.read_text(encoding="utf-8")
    assert re.search(r"^checkov==\d+\.\d+\.\d+ \\$", text, re.MULTILINE), "checkov is pinned"
    blocks = re.split(r"^(?=[A-Za-z0-9._-]+==)", text, flags=re.MULTILINE)[1:]
    assert len(blocks) > 10
    for requirement in blocks:
        assert "--hash=sha256:" in requirement, f"not hashed: {requirement.splitlines()[0]}"
