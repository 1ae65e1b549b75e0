"""Property tests of the field-level three-way merge (`sync.policies.FieldMerge`).

Pure: no database. Each example draws a base row, what the server changed since the
client's base version (with hybrid-logical-clock stamps), what the client sent, and the
client's stamp; the merge is run on the policies the entities actually register (accounts:
address and geo groups; leads: status merged by rank) and on a synthetic policy that has
both a group and a ranked field.

The result of a merge is `{**current, **merge.values}`: the row the engine writes.
Properties: (a) a side that alone changed a field (or group) keeps its value; (b) when
both changed it, the later stamp wins and the loser's values are reported; nothing is
silently dropped; (c) groups end wholly the client's view or wholly the server's; (d) a
ranked field ends at the higher rank whatever the stamps; (e) the merge is deterministic
and ignores the order of the client's fields; (f) with an unknown history every
difference is a conflict; and a value the device merely echoed from its base is no edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schema.enums import LeadStatus
from schema.leads.sync import RANK
from schema.registry import registry
from sync.hlc import stamp
from sync.policies import FieldMerge, History, Merge

SMALL = st.sampled_from(["a", "b", "c"])  # few values, so sides often agree by chance
NULLABLE = st.sampled_from([None, "a", "b"])


@dataclass(frozen=True)
class Schema:
    name: str
    policy: FieldMerge
    columns: Mapping[str, st.SearchStrategy[Any]]

    def __repr__(self) -> str:
        return self.name.upper()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # how hypothesis prints it
        p.text(repr(self))

    def unit_of(self, column: str) -> frozenset[str]:
        for g in self.policy.groups:
            if column in g:
                return frozenset(g)
        return frozenset({column})

    @property
    def units(self) -> list[frozenset[str]]:
        seen: list[frozenset[str]] = []
        for c in self.columns:
            u = self.unit_of(c) & set(self.columns)
            if u not in seen:
                seen.append(u)
        return seen

    def ranked_in(self, unit: frozenset[str]) -> str | None:
        return next((c for c in sorted(unit) if c in self.policy.ranked), None)


def _policy(entity: str) -> FieldMerge:
    policy = registry[entity].policy
    assert isinstance(policy, FieldMerge)
    return policy


ACCOUNT = Schema("account", _policy("account"), {
    "name": SMALL, "phone": NULLABLE, "notes": NULLABLE,
    "street": NULLABLE, "city": NULLABLE, "postal_code": NULLABLE, "region": NULLABLE,
    "country": NULLABLE, "lat": st.sampled_from([None, 1.0, 2.0]),
    "lon": st.sampled_from([None, 1.0, 2.0]),
})
LEAD = Schema("lead", _policy("lead"), {
    "company": SMALL, "phone": NULLABLE, "score": st.sampled_from([0, 50, 100]),
    "status": st.sampled_from(list(LeadStatus)),
})
STAGES = {"new": 0, "open": 1, "won": 2}
# A ranked field merges alone (FieldMerge refuses to group it), next to a group.
MIXED = Schema("mixed", FieldMerge(groups=(frozenset({"x", "y"}),), ranked={"stage": STAGES}), {
    "x": SMALL, "y": SMALL, "stage": st.sampled_from(list(STAGES)), "why": NULLABLE, "z": SMALL,
})
SCHEMAS = [ACCOUNT, LEAD, MIXED]


def stamps() -> st.SearchStrategy[str]:
    # A narrow range of times and few nodes, so equal and near-equal stamps come up.
    return st.builds(stamp, st.integers(0, 4), st.integers(0, 2), st.sampled_from(["dev", "srv"]))


@dataclass
class Case:
    schema: Schema
    base: dict[str, Any]
    current: dict[str, Any]
    changed: dict[str, str]  # server-changed column → hlc of its last change
    incoming: dict[str, Any]
    client_hlc: str

    def history(self, known: bool = True, latest: str | None = None) -> History:
        if not known:
            return History(known=False, latest_hlc=latest if latest is not None
                           else max(self.changed.values(), default=""))
        return History(known=True, changed=dict(self.changed),
                       base={c: self.base[c] for c in self.changed},
                       latest_hlc=max(self.changed.values(), default=""))

    def merge(self, known: bool = True, incoming: Mapping[str, Any] | None = None) -> Merge:
        return self.schema.policy.merge(self.current, dict(incoming or self.incoming),
                                        self.client_hlc, self.history(known))

    def client_view(self) -> dict[str, Any]:
        """The row as the device sees it: its base plus its own edits."""
        return {**self.base, **self.incoming}

    def describe(self, m: Merge | None = None) -> str:
        lines = [f"schema={self.schema.name}", f"base={self.base}", f"current={self.current}",
                 f"server changed={self.changed}", f"incoming={self.incoming}",
                 f"client_hlc={self.client_hlc}"]
        if m is not None:
            lines += [f"values={m.values}", f"conflicted={m.conflicted}",
                      f"client_lost={m.client_lost}", f"server_lost={m.server_lost}",
                      f"rule={m.rule}", f"result={result_of(self, m)}"]
        return "\n  ".join(lines)


def result_of(case: Case, m: Merge) -> dict[str, Any]:
    return {**case.current, **m.values}


@st.composite
def cases(draw: st.DrawFn, schemas: list[Schema] | None = None, *, edits_differ: bool = True,
          whole_groups: bool = False) -> Case:
    """A merge input.

    `edits_differ`: every column the client sends differs from its base value (a real
    edit). `whole_groups`: when the client touches a group it sends every column of it,
    the untouched ones with their base values (how a form submits an address).
    """
    schema = draw(st.sampled_from(schemas or SCHEMAS))
    cols = list(schema.columns)
    base = {c: draw(schema.columns[c]) for c in cols}
    current = dict(base)
    changed: dict[str, str] = {}
    for c in draw(st.lists(st.sampled_from(cols), unique=True)):
        # A server change may end on the base value again (A → B → A): still a change.
        current[c] = draw(schema.columns[c])
        changed[c] = draw(stamps())
    edited = draw(st.lists(st.sampled_from(cols), min_size=1, unique=True))
    incoming: dict[str, Any] = {}
    for c in edited:
        s = schema.columns[c]
        incoming[c] = draw(s.filter(lambda v, c=c: v != base[c]) if edits_differ else s)
    if whole_groups:
        for c in list(incoming):
            for other in sorted(schema.unit_of(c) & set(cols)):
                incoming.setdefault(other, base[other])
    order = draw(st.permutations(list(incoming)))
    incoming = {c: incoming[c] for c in order}
    return Case(schema, base, current, changed, incoming, draw(stamps()))


def edits(case: Case, known: bool = True) -> dict[str, Any]:
    """What the client really changed: a value equal to its base is an echo (devices send
    whole documents), not an edit. The base is known for what the server changed."""
    return {c: v for c, v in case.incoming.items()
            if not (known and c in case.changed and case.base[c] == v)}


def _sent(case: Case, unit: frozenset[str], known: bool = True) -> dict[str, Any]:
    return {c: v for c, v in edits(case, known).items() if c in unit}


def _noop(case: Case, unit: frozenset[str], known: bool = True) -> bool:
    return all(case.current[c] == v for c, v in _sent(case, unit, known).items())


# -- (a) one-sided changes ---------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(cases())
def test_one_sided_changes_keep_that_sides_value(case: Case) -> None:
    m = case.merge()
    result = result_of(case, m)
    for unit in case.schema.units:
        sent = _sent(case, unit)
        server = unit & set(case.changed)
        if sent and not server:
            assert all(result[c] == v for c, v in sent.items()), case.describe(m)
            assert not unit & set(m.conflicted), case.describe(m)
            assert not unit & set(m.client_lost), case.describe(m)
        if server and not sent:
            assert all(result[c] == case.current[c] for c in unit), case.describe(m)
            assert not unit & set(m.server_lost), case.describe(m)
        if not server and not sent:
            assert all(result[c] == case.base[c] for c in unit), case.describe(m)


# -- (b) both sides changed: later stamp wins, the loser is reported ---------------------------


@settings(max_examples=150, deadline=None)
@given(cases())
def test_both_changed_later_stamp_wins_and_loser_is_reported(case: Case) -> None:
    m = case.merge()
    result = result_of(case, m)
    for unit in case.schema.units:
        sent = _sent(case, unit)
        server_stamps = [case.changed[c] for c in unit if c in case.changed]
        if not sent or not server_stamps or _noop(case, unit) \
                or case.schema.ranked_in(frozenset(sent)):  # rank, not time, decides
            continue
        assert set(sent) <= set(m.conflicted), case.describe(m)
        if case.client_hlc > max(server_stamps):
            client = case.client_view()
            assert all(result[c] == client[c] for c in unit), case.describe(m)
            for c in unit & set(case.changed):
                if result[c] != case.current[c]:
                    assert m.server_lost.get(c, object()) == case.current[c], case.describe(m)
        else:
            assert all(result[c] == case.current[c] for c in unit), case.describe(m)
            for c, v in sent.items():
                if v != case.current[c]:
                    assert m.client_lost.get(c, object()) == v, case.describe(m)


@settings(max_examples=150, deadline=None)
@given(cases(edits_differ=False), st.booleans())
def test_nothing_is_silently_dropped(case: Case, known: bool) -> None:
    """Every value a side wrote is either in the result or reported as lost."""
    m = case.merge(known=known)
    result = result_of(case, m)
    for c, v in edits(case, known).items():
        assert result[c] == v or (c in m.client_lost and m.client_lost[c] == v), \
            f"client's {c}={v!r} vanished\n  {case.describe(m)}"
    for c in case.changed:
        assert result[c] == case.current[c] or (
            c in m.server_lost and m.server_lost[c] == case.current[c]), \
            f"server's {c}={case.current[c]!r} vanished\n  {case.describe(m)}"
    for c, v in m.server_lost.items():
        assert result[c] != v, f"server's {c}={v!r} reported lost but kept\n  {case.describe(m)}"
    touched = {g for c in case.incoming for g in case.schema.unit_of(c)}
    assert set(m.values) <= touched, case.describe(m)
    assert not set(m.values) & set(m.client_lost), case.describe(m)


# -- (c) groups are all-or-nothing ----------------------------------------------------------


def _assert_group_atomic(case: Case, m: Merge) -> None:
    result = result_of(case, m)
    client = case.client_view()
    for unit in case.schema.units:
        if len(unit) < 2 or not unit & set(m.conflicted):
            continue
        got = {c: result[c] for c in sorted(unit)}
        theirs = {c: case.current[c] for c in sorted(unit)}
        mine = {c: client[c] for c in sorted(unit)}
        assert got in (theirs, mine), (
            f"group {sorted(unit)} mixes sides after a conflict: result {got}, server's "
            f"{theirs}, client's {mine}\n  {case.describe(m)}")


@settings(max_examples=150, deadline=None)
@given(cases([ACCOUNT, MIXED], whole_groups=True), st.booleans())
def test_group_is_all_or_nothing_when_the_client_sends_the_whole_group(
        case: Case, known: bool) -> None:
    _assert_group_atomic(case, case.merge(known=known))


_ADDR = {"name": "Shop", "phone": None, "notes": None, "street": "1 Old Rd", "city": "Lyon",
         "postal_code": "69001", "region": None, "country": "FR", "lat": None, "lon": None}


@settings(max_examples=150, deadline=None)
@given(cases([ACCOUNT, MIXED]), st.booleans())
@example(Case(  # the back office moved the shop to Paris; the rep fixed the old street later
    ACCOUNT, base=_ADDR,
    current={**_ADDR, "street": "9 New Av", "city": "Paris", "postal_code": "75001"},
    changed={c: stamp(1_000, 0, "srv") for c in ("street", "city", "postal_code")},
    incoming={"street": "10 Old Rd"}, client_hlc=stamp(2_000, 0, "r1-phone")), True)
def test_group_is_all_or_nothing_when_the_client_sends_part_of_a_group(
        case: Case, known: bool) -> None:
    """A device that edits only the street must not end up with its street in the city the
    server moved the address to: the whole group is the device's (street edited, the rest
    as the device last saw it) or the server's. With no known base, the server's stands."""
    m = case.merge(known=known)
    _assert_group_atomic(case, m)
    if not known:
        for unit in case.schema.units:
            sent = _sent(case, unit, known=False)
            if sent and set(sent) != unit and not _noop(case, unit, known=False) \
                    and not case.schema.ranked_in(frozenset(sent)):
                assert all(result_of(case, m)[c] == case.current[c] for c in unit), \
                    case.describe(m)


# -- (d) ranked fields ------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(cases([LEAD, MIXED], edits_differ=False), st.booleans())
def test_ranked_field_ends_at_the_higher_rank_whatever_the_stamps(
        case: Case, known: bool) -> None:
    m = case.merge(known=known)
    result = result_of(case, m)
    for column, rank in case.schema.policy.ranked.items():
        if column not in case.incoming:
            continue
        unit = case.schema.unit_of(column)
        server_changed = bool(unit & set(case.changed)) or not known
        sent = case.incoming[column]
        if column not in edits(case, known):  # an echo of the base: not an edit
            assert result[column] == case.current[column], case.describe(m)
            continue
        if not server_changed:
            if not _noop(case, unit, known):
                assert result[column] == sent, case.describe(m)
            continue
        if _noop(case, unit, known):
            continue
        expected = max(sent, case.current[column], key=lambda v, r=rank: r.get(v, -1))
        assert result[column] == expected, case.describe(m)


@settings(max_examples=100, deadline=None)
@given(cases([LEAD]), stamps(), stamps())
def test_lead_status_rank_ignores_stamps(case: Case, early: str, late: str) -> None:
    """The same status conflict resolves the same way with the client's clock far behind
    or far ahead of the server's."""
    if "status" not in case.incoming or "status" not in case.changed:
        return
    outcomes = set()
    for client_hlc in (stamp(0, 0, "aaa"), stamp(10**12, 0, "zzz"), early, late):
        m = case.schema.policy.merge(case.current, case.incoming, client_hlc, case.history())
        outcomes.add(result_of(case, m)["status"])
    assert len(outcomes) == 1, case.describe()
    (status,) = outcomes
    assert RANK[status] == max(RANK[case.current["status"]], RANK[case.incoming["status"]])


# -- (e) determinism --------------------------------------------------------------------------


def _decision(m: Merge) -> tuple[Any, ...]:
    return (m.values, m.client_lost, m.server_lost, sorted(m.conflicted), m.server_changed)


@settings(max_examples=150, deadline=None)
@given(cases(edits_differ=False), st.booleans(), st.randoms(use_true_random=False))
def test_merge_is_deterministic_and_ignores_field_order(case: Case, known: bool,
                                                         rnd: Any) -> None:
    first, again = case.merge(known=known), case.merge(known=known)
    assert _decision(first) == _decision(again) and first.rule == again.rule
    keys = list(case.incoming)
    rnd.shuffle(keys)
    shuffled = case.merge(known=known, incoming={c: case.incoming[c] for c in keys})
    assert _decision(first) == _decision(shuffled), case.describe(first)


_LEAD = {"company": "Acme", "phone": "1", "score": 0, "status": LeadStatus.NEW}


@settings(max_examples=150, deadline=None)
@given(cases(edits_differ=False))
@example(Case(  # a status conflict (decided by rank) and a phone conflict (decided by time)
    LEAD, base=_LEAD, current={**_LEAD, "phone": "2", "status": LeadStatus.CONTACTED},
    changed={"phone": stamp(1_000, 0, "srv"), "status": stamp(1_000, 0, "srv")},
    incoming={"phone": "3", "status": LeadStatus.QUALIFIED},
    client_hlc=stamp(500, 0, "r1-phone")))
def test_conflict_rule_label_does_not_depend_on_field_order(case: Case) -> None:
    """The rule stored on the conflict record names how the conflict was decided; the
    order of the keys in the device's JSON must not change it."""
    first = case.merge()
    keys = list(reversed(case.incoming))
    reordered = case.merge(incoming={c: case.incoming[c] for c in keys})
    assert first.rule == reordered.rule, (
        f"rule {first.rule!r} vs {reordered.rule!r} for key order {list(case.incoming)} vs "
        f"{keys}\n  {case.describe(first)}")


# -- (f) unknown history --------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(cases(edits_differ=False), st.one_of(st.just(""), stamps()))
def test_unknown_history_treats_every_difference_as_a_conflict(case: Case, latest: str) -> None:
    policy = case.schema.policy
    m = policy.merge(case.current, case.incoming, case.client_hlc,
                     case.history(known=False, latest=latest))
    result = result_of(case, m)
    assert m.server_changed
    for unit in case.schema.units:
        sent = _sent(case, unit, known=False)  # no base: nothing can be told an echo
        if not sent:
            continue
        if _noop(case, unit, known=False):
            assert not set(sent) & set(m.conflicted), case.describe(m)
            assert all(result[c] == case.current[c] for c in unit), case.describe(m)
            continue
        assert set(sent) <= set(m.conflicted), case.describe(m)
        ranked = case.schema.ranked_in(frozenset(sent))
        if ranked is not None:
            rank = policy.ranked[ranked]
            wins = rank.get(sent[ranked], -1) > rank.get(case.current[ranked], -1)
        else:  # a group sent in part cannot be completed from an unknown base: it loses
            wins = case.client_hlc > latest and set(sent) == unit
        if wins:
            assert all(result[c] == v for c, v in sent.items()), case.describe(m)
        else:
            assert all(result[c] == case.current[c] for c in unit), case.describe(m)
            assert {c: v for c, v in sent.items() if v != case.current[c]}.items() <= \
                m.client_lost.items(), case.describe(m)


# -- three-way: an echoed, unchanged value is not an edit -----------------------------------


@settings(max_examples=150, deadline=None)
@given(cases([ACCOUNT, LEAD]))
@example(Case(  # the manager changed the phone; later the rep fixed the name in a whole-form save
    ACCOUNT, base=_ADDR, current={**_ADDR, "phone": "+33 1 00"},
    changed={"phone": stamp(1_000, 0, "srv")}, incoming={"name": "Shop & Co"},
    client_hlc=stamp(2_000, 0, "r1-phone")))
def test_echoed_unchanged_value_never_reverts_a_server_change(case: Case) -> None:
    """Devices often send whole documents (the push engine says so). A column the device
    sends with its base value was not edited by the device: a three-way merge keeps the
    server's change to it, whatever the clocks say."""
    echoed = {c: case.base[c] for c in case.changed
              if case.current[c] != case.base[c] and c not in case.incoming
              and len(case.schema.unit_of(c)) == 1 and c not in case.schema.policy.ranked}
    if not echoed:
        return
    incoming = {**case.incoming, **echoed}
    m = case.merge(incoming=incoming)
    result = result_of(case, m)
    for c in echoed:
        assert result[c] == case.current[c], (
            f"the device echoed its base {c}={case.base[c]!r} and it replaced the server's "
            f"{case.current[c]!r}\n  {case.describe(m)}\n  echoed={echoed}")


def test_a_ranked_field_cannot_be_grouped() -> None:
    with pytest.raises(ValueError, match="ranked field"):
        FieldMerge(groups=(frozenset({"stage", "why"}),), ranked={"stage": STAGES})
