"""fieldsync's sync engine: change log, push, pull, conflict policies and scopes.

It knows no HTTP, no GraphQL and no CRM entity by name: `schema/` registers each
syncable entity (`EntitySpec`) and the scope rule (`ScopeRule`) with a `Registry`.
"""
