"""Database engine and units of work.

SQLite runs in WAL mode with a busy timeout, and write transactions start with
`BEGIN IMMEDIATE` so concurrent writers queue instead of failing with "database is
locked". PostgreSQL pings pooled connections before use so a restarted server is
survived without restarting fieldsync.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from psycopg.types.array import ListBinaryDumper
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from server import jsontext
from server.settings import Settings


def async_url(url: str) -> str:
    """Map a plain database URL to the async driver fieldsync uses for it."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
    for prefix in ("postgresql+psycopg:", "postgresql:", "postgres:"):
        if url.startswith(prefix):
            return "postgresql+psycopg:" + url.removeprefix(prefix)
    return url


def sync_url(url: str) -> str:
    """The synchronous twin of a URL, for Alembic and the CLI."""
    url = async_url(url)
    return url.replace("sqlite+aiosqlite:", "sqlite:")


def _configure_sqlite(engine: sa.Engine, busy_timeout_ms: int) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver: we emit BEGIN ourselves below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # The timeout first: the journal-mode pragma itself may wait for a lock.
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        if options.get("sqlite_autocommit", False):
            return  # reads: each statement is its own snapshot, as on PostgreSQL
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("sqlite_immediate") else "BEGIN")


def _configure_postgresql(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(_dbapi_conn: Any, record: Any) -> None:
        # Lists (the id sets of `x = ANY(%s)`) travel in binary. psycopg's default, the
        # text form, writes each UUID out as text and runs a regular expression over it
        # to decide on quotes: 3 % of a push batch's instructions, and more for a
        # manager's pull, whose scope is a list of a thousand account keys.
        record.driver_connection.adapters.register_dumper(list, ListBinaryDumper)


def create_engine(settings: Settings) -> AsyncEngine:
    url = async_url(settings.database_url)
    # A push stores one result document per mutation: json.dumps was a few per cent of
    # its CPU.
    json_options: dict[str, Any] = {"json_serializer": jsontext.dumps}
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_pre_ping=False, **json_options)
        _configure_sqlite(engine.sync_engine, settings.sqlite_busy_timeout_ms)
        return engine
    engine = create_async_engine(
        url,
        **json_options,
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=1800,
        # Timestamps come back in UTC, so the UTCDateTime column type has nothing to do.
        # JIT compilation costs 100-400 ms on analytics statements that run for tenths of
        # a second, and nothing here runs long enough to repay it.
        connect_args={"options": "-c timezone=UTC -c jit=off"},
    )
    _configure_postgresql(engine.sync_engine)
    return engine


def create_sync_engine(settings: Settings) -> sa.Engine:
    url = sync_url(settings.database_url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url)
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    engine = sa.create_engine(url, pool_pre_ping=True)
    _configure_postgresql(engine)
    return engine


class Database:
    """Hands out units of work: `read()` for queries, `write()` for changes.

    A unit of work commits once when its block ends without error and rolls back
    otherwise; services never commit.
    """

    def __init__(self, engine: AsyncEngine, concurrent_writes: int | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._writer = engine.execution_options(sqlite_immediate=True)
        # Reads run in autocommit: no BEGIN/ROLLBACK round trips (4 of an empty pull's 10
        # on PostgreSQL). Nothing is lost: under READ COMMITTED every statement takes its
        # own snapshot anyway (SQLite's WAL likewise per statement), and a read unit of
        # work never writes.
        self._reader = (engine.execution_options(isolation_level="AUTOCOMMIT")
                        if self.dialect == "postgresql"
                        else engine.execution_options(sqlite_autocommit=True))
        # Write transactions end serialised on the change-log head anyway; letting more of
        # them start than there are connections only exhausts the pool, so a burst of
        # pushes would fail with UNAVAILABLE instead of queueing here, in order.
        pool_size = getattr(engine.pool, "size", lambda: 1)()
        self._write_slots = concurrent_writes or (1 if self.dialect == "sqlite"
                                                  else max(1, pool_size - 2))
        self._gate: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with _released(AsyncSession(self._reader, expire_on_commit=False)) as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """Never nest: a write unit of work must not open another one."""
        if self._gate is None:
            self._gate = asyncio.Semaphore(self._write_slots)
        async with self._gate, _released(AsyncSession(self._writer, expire_on_commit=False)) \
                as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def _released(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """The session, closed at the end; if closing fails, its connections are invalidated.

    A statement cancelled half-way (graphql-core cancels a failed field's siblings, a
    client goes away) can leave its connection mid-protocol, and then the rollback of
    `close()` fails too. Invalidation still hands the pool its slot back (and closes the
    socket), instead of leaking a checked-out connection to the garbage collector.
    """
    try:
        yield session
    finally:
        try:
            await session.close()
        except BaseException:
            await asyncio.shield(session.invalidate())
            raise
