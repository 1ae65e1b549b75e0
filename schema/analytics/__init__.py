"""Manager analytics over the central customer repository (docs/manager-queries.md).

Service modules compute in SQL (portable between SQLite and PostgreSQL) and return small
dataclasses; `schema.analytics.graphql.AnalyticsQuery` exposes them. Every service takes
the caller's `Principal` and reads through the one scope rule (`schema.scope`).
"""
