"""The Terraform under infra/, parsed with python-hcl2 into plain values the tests can compare.

python-hcl2 keeps HCL's quoting: a string literal comes back as `'"text"'`, an expression as
`'${expr}'`, block keys as `'"name"'`. Here a literal becomes `str`, an expression `Expr`, and
labels lose their quotes, so a test reads `config.resource("google_pubsub_topic", "steps")`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


@dataclass(frozen=True)
class Expr:
    """An HCL expression (reference, function call, conditional), kept as its source text."""

    text: str

    def refs(self, prefix: str) -> list[str]:
        """Names referenced as `<prefix>.<name>` (e.g. `local`, `var`, `module`)."""
        return re.findall(rf"\b{re.escape(prefix)}\.(\w+)", self.text)


@dataclass
class Config:
    """One Terraform module: its resources, data sources, ephemeral resources, variables,
    locals, module calls and outputs."""

    folder: Path
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    ephemeral: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)

    def resource(self, type_: str, name: str) -> dict[str, Any]:
        return self.resources[(type_, name)]

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {name: body for (t, name), body in self.resources.items() if t == type_}

    def module(self, name: str) -> Config:
        """The module a module call uses (a local `./modules/...` source)."""
        source = self.modules[name]["source"]
        return load(self.folder / source)


def plain(value: Any) -> Any:
    """python-hcl2's value with quotes removed: literals as str, expressions as Expr."""
    if isinstance(value, dict):
        return {_label(k): plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            return value[1:-1].replace('\\"', '"')
        if value.startswith("${") and value.endswith("}"):
            return Expr(value[2:-1])
        return Expr(value)
    return value


def _label(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key.startswith('"') and key.endswith('"') else key


def load(folder: Path = INFRA) -> Config:
    config = Config(folder.resolve())
    for path in sorted(folder.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            parsed = plain(hcl2.load(handle))
        for block in parsed.get("resource", []):
            for type_, named in block.items():
                for name, body in named.items():
                    config.resources[(type_, name)] = body
        for kind, found in (("data", config.data), ("ephemeral", config.ephemeral)):
            for block in parsed.get(kind, []):
                for type_, named in block.items():
                    for name, body in named.items():
                        found[(type_, name)] = body
        for block in parsed.get("variable", []):
            config.variables.update(block)
        for block in parsed.get("locals", []):
            config.locals.update(block)
        for block in parsed.get("module", []):
            config.modules.update(block)
        for block in parsed.get("output", []):
            config.outputs.update(block)
        config.terraform.extend(parsed.get("terraform", []))
    return config


def map_keys(config: Config, value: Any, inputs: dict[str, Any] | None = None) -> set[str]:
    """The keys a map-valued attribute can have: a literal map's keys, or the keys of every
    `local.X` (and, inside a module, `var.X` given in `inputs`) an expression merges."""
    if isinstance(value, dict):
        return set(value)
    if not isinstance(value, Expr):
        raise TypeError(f"not a map: {value!r}")
    keys: set[str] = set()
    for name in value.refs("local"):
        keys |= map_keys(config, config.locals[name], inputs)
    for name in value.refs("var"):
        if inputs is None or name not in inputs:
            raise KeyError(f"var.{name} is not given to the module")
        keys |= inputs[name]
    return keys


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body."""
    blocks = body[name]
    assert isinstance(blocks, list)
    assert len(blocks) == 1, f"expected one {name} block, found {len(blocks)}"
    result: dict[str, Any] = blocks[0]
    return result
