"""Sync dialects for existing offline-first client libraries (RxDB, WatermelonDB).

Each dialect is a thin translation onto the one sync engine: the same scope rule,
conflict policies, validation and change feed as the native protocol.
"""
