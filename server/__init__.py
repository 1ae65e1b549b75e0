"""fieldsync's host: Starlette app, settings, authentication, CLI and database engine."""
