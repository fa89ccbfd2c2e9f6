"""Fixtures for the emulator's own tests (load with ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator
from tests.emulator_helpers import BASE_URL, Clock, World, seed, world_seed


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emu(clock: Clock) -> Emulator:
    return Emulator(seed(), public_url=BASE_URL, clock=clock)


@pytest.fixture
async def api(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url=f"{BASE_URL}/api/v1") as client:
        yield client


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """The fixtures' world (``World``), over an in-process transport."""
    emulator = Emulator(world_seed(), public_url=BASE_URL)
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield World(client, emulator)
