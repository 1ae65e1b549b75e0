"""The pull reads ids, timestamps and dates as text in SQL; what the codec then sends must
be exactly what it sends for the same values read as Python objects (devices compare and
store these strings)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from server.db import Database
from sync.codec import _TEXTS, _UUIDS, _format_uuid, codec_for, parse_uuid
from sync.model import UTCDateTime
from sync.pull import _wire_text

PROBE = sa.Table("wire_text_probe", sa.MetaData(),
                 sa.Column("id", sa.Uuid, primary_key=True),
                 sa.Column("at", UTCDateTime, nullable=False),
                 sa.Column("day", sa.Date, nullable=False))

VALUES = [
    (datetime(2026, 11, 28, 16, 54, 50, tzinfo=UTC), date(2026, 11, 28)),  # no microseconds
    (datetime(2026, 11, 28, 16, 54, 50, 120000, tzinfo=UTC), date(999, 1, 2)),  # 6 digits kept
    (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), date(2024, 2, 29)),
    (datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), date(1, 1, 1)),
    (datetime(2026, 6, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))), date(9999, 12, 31)),
]


async def test_ids_timestamps_and_dates_read_as_the_codec_writes_them(db: Database) -> None:
    rows = [{"id": uuid.uuid4(), "at": at, "day": day} for at, day in VALUES]
    async with db.write() as s:
        await s.run_sync(lambda sync: PROBE.create(sync.connection()))
        await s.execute(sa.insert(PROBE), rows)
    async with db.read() as s:
        if db.dialect == "postgresql":  # the text must not depend on session settings
            await s.execute(sa.text("SET DateStyle = 'SQL, DMY'"))
            await s.execute(sa.text("SET TimeZone = 'America/New_York'"))
        got = (await s.execute(sa.select(*(_wire_text(c, db.dialect) for c in PROBE.c))
                               .order_by(PROBE.c.at))).all()
        if db.dialect == "postgresql":
            await s.execute(sa.text("RESET ALL"))
    codecs = [codec_for(c) for c in PROBE.c]
    expected = [[f.dump(r[f.column]) for f in codecs] for r in sorted(rows, key=lambda r: r["at"])]
    sent = [[f.dump(v) for f, v in zip(codecs, r, strict=True)] for r in got]
    assert sent == expected
    assert {r[1] for r in sent} >= {"2026-11-28T16:54:50Z", "2026-11-28T16:54:50.120000Z",
                                   "2026-05-31T23:30:00Z"}


#: ASCII digits to their full-width forms (U+FF10…U+FF19).
FULL_WIDTH = {ord("0") + i: 0xFF10 + i for i in range(10)}


@given(st.uuids(), st.sampled_from(["canonical", "upper", "braces", "urn", "hex", "mixed",
                                   "full-width"]))
def test_an_id_read_from_any_spelling_is_sent_back_in_its_own_canonical_text(
        value: uuid.UUID, spelling: str) -> None:
    text = str(value)
    sent = {"canonical": text, "upper": text.upper(), "braces": "{" + text + "}",
            "urn": "urn:uuid:" + text, "hex": value.hex,
            "mixed": text[:9] + text[9:].upper(),
            # int(_, 16) reads non-ASCII digits too, and lower() leaves them alone.
            "full-width": text.translate(FULL_WIDTH),
            }[spelling]
    _assert_sent_back_canonical(sent, value)


@pytest.mark.parametrize("sent", [
    "b_cdef12-3456-7890-abcd-ef1234567890",  # `_` between digits
    "+bcdef12-3456-7890-abcd-ef1234567890",  # a sign
    " bcdef12-3456-7890-abcd-ef1234567890",  # a space
])
def test_an_id_spelled_with_what_int_also_reads_never_becomes_its_text(sent: str) -> None:
    _assert_sent_back_canonical(sent, uuid.UUID("0bcdef12-3456-7890-abcd-ef1234567890"))


def _assert_sent_back_canonical(sent: str, value: uuid.UUID) -> None:
    _UUIDS.clear()
    _TEXTS.clear()
    parsed = parse_uuid(sent)
    assert parsed == value
    assert _format_uuid(parsed) == str(value)  # what every device compares and stores
