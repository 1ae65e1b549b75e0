from pathlib import Path

from server.cli import export_schema


def test_committed_sdl_is_current() -> None:
    committed = (Path(__file__).parent.parent / "schema.graphql").read_text()
    assert committed == export_schema(), "schema.graphql is stale: run `fieldsync schema export`"
