"""Fixtures for engine tests: the real store, scripted collaborators, a settable clock."""

from __future__ import annotations

import pytest
from tests.engine.doubles import Clock, EchoTools, ScriptedModel

from messagedb_agent.engine.effects import EngineConfig
from messagedb_agent.engine.step import Engine
from messagedb_agent.store.client import MessageStore


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def tools() -> EchoTools:
    return EchoTools(
        {
            "add": lambda args, ctx: {"sum": args["a"] + args["b"]},
            "whoami": lambda args, ctx: {"user": ctx.owner},
        }
    )


@pytest.fixture
def engine(store: MessageStore, model: ScriptedModel, tools: EchoTools, clock: Clock) -> Engine:
    return Engine(store, model, tools, EngineConfig(model="scripted"), clock=clock, worker="test")
