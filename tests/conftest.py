"""Test fixtures: real databases, isolated per test session and per test.

The suite runs on SQLite by default and on PostgreSQL when ``P2P_TEST_DATABASE_URL`` is set (CI
runs it both ways). Each session gets its own database (a temporary SQLite file; a new PostgreSQL
database created and dropped around the session), migrated once; each test then starts from an
empty copy. With ``CI=true`` a skipped test fails the run: CI must never pass by not testing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import TestDatabase, make_core, pg_create_database, pg_drop_database

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every suite: {report.longrepr}"


@pytest.fixture(scope="session")
async def test_database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestDatabase]:
    url = os.environ.get("P2P_TEST_DATABASE_URL")
    if url:
        db = await pg_create_database(url)
        try:
            yield db
        finally:
            await pg_drop_database(db)
    else:
        folder = tmp_path_factory.mktemp("db")
        db = TestDatabase(url=f"sqlite+aiosqlite:///{folder / 'template.db'}", folder=folder)
        await db.migrate_template()
        yield db


@pytest.fixture
async def database_url(test_database: TestDatabase, tmp_path: Path) -> str:
    """A migrated, empty database for one test."""
    return await test_database.fresh(tmp_path)


@pytest.fixture
def clock():
    from core.domain.clock import ManualClock

    return ManualClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))


@pytest.fixture
async def core(database_url: str, clock, tmp_path: Path):
    core = await make_core(database_url, clock, tmp_path)
    try:
        yield core
    finally:
        await core.close()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read a developer's ./p2p.toml or P2P_* variables by accident."""
    for name in list(os.environ):
        if name.startswith("P2P_") and name != "P2P_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


