"""Conflict policies: pure functions from (server row, client edit, history) to a merge.

A policy never touches the database. It is told what the server changed since the
client's base version (`History`) and decides, field by field, which side wins; the
losing values come back so the engine can keep them in a Conflict record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class History:
    """What the server changed after the client's base version.

    `known` is False when the change log no longer reaches back to the base (or the
    client sent no base): every field whose value differs is then treated as changed
    on both sides, stamped with the row's latest clock.
    """

    known: bool
    changed: Mapping[str, str] = field(default_factory=dict)  # column → hlc of last change
    base: Mapping[str, Any] = field(default_factory=dict)  # column → wire value at base
    latest_hlc: str = ""


@dataclass
class Merge:
    values: dict[str, Any]  # columns to write
    conflicted: list[str] = field(default_factory=list)
    client_lost: dict[str, Any] = field(default_factory=dict)
    server_lost: dict[str, Any] = field(default_factory=dict)
    rule: str = ""
    server_changed: bool = False  # the server changed other fields since base (→ MERGED)


class Policy:
    """Base policy: the client's values are applied as sent."""

    name = "client-wins"

    def merge(
        self, current: Mapping[str, Any], incoming: Mapping[str, Any], client_hlc: str,
        history: History,
    ) -> Merge:
        return Merge(values=dict(incoming), server_changed=bool(history.changed))


class AppendOnly(Policy):
    """Notes: created offline they never conflict; only the author edits (a hook checks)."""

    name = "append-only"


class WholeDocument(Policy):
    """Orders: the document is edited as a whole by its author; the entity's hooks
    decide whether the server's state (e.g. confirmed) still allows the edit."""

    name = "document"


class ServerOnly(Policy):
    """Reference data (catalogue, invoices): written by privileged users only."""

    name = "server-only"


@dataclass(frozen=True)
class FieldMerge(Policy):
    """Field-level three-way merge.

    A field changed on one side only keeps that side's value. A field changed on both
    sides to different values goes to the later hybrid-logical-clock stamp, except
    `ranked` fields, which go to the higher rank whatever the time (a lead's status).
    `groups` merge as one unit (an address, a lat/lon pair): either all of the client's
    changes to a group apply or none do.
    """

    groups: tuple[frozenset[str], ...] = ()
    ranked: Mapping[str, Mapping[Any, int]] = field(default_factory=dict)
    name: str = "field-merge"

    def __post_init__(self) -> None:
        for g in self.groups:
            if len(g) > 1 and g & set(self.ranked):
                # A rank decides one field; grouping it with others would force either a
                # mixed group or a rank that loses to a clock. Keep ranked fields alone.
                raise ValueError(f"ranked field {sorted(g & set(self.ranked))} cannot be "
                                 "in a field group")

    def _group_of(self, column: str) -> frozenset[str]:
        for g in self.groups:
            if column in g:
                return g
        return frozenset({column})

    def merge(
        self, current: Mapping[str, Any], incoming: Mapping[str, Any], client_hlc: str,
        history: History,
    ) -> Merge:
        out = Merge(values={})
        kinds: set[str] = set()
        # A value equal to the client's base is an echo (clients often send whole
        # documents), not an edit: it must never revert what the server changed since.
        edits = {c: v for c, v in incoming.items()
                 if not (history.known and c in history.base and history.base[c] == v)}
        done: set[str] = set()
        for column in sorted(edits):
            if column in done:
                continue
            whole = self._group_of(column)
            group = whole & edits.keys()
            done |= group
            sent = {c: edits[c] for c in group}
            if all(current.get(c) == v for c, v in sent.items()):
                continue  # the server already holds these values
            if history.known:
                stamps = [history.changed[c] for c in whole if c in history.changed]
            else:
                stamps = [history.latest_hlc]
            if not stamps:
                out.values.update(sent)
                continue
            ranked = next((c for c in group if c in self.ranked), None)
            if ranked is not None:
                rank = self.ranked[ranked]
                client_wins = rank.get(sent[ranked], -1) > rank.get(current.get(ranked), -1)
                kinds.add("rank")
            else:
                client_wins = client_hlc > max(stamps)
                kinds.add("lww")
            # The client's view of the whole group: what it sent, plus its base for the
            # fields the server changed meanwhile. If that base is unknown, the group
            # cannot be applied whole, so the server's group stands.
            view = dict(sent)
            for c in sorted(whole - group):
                if not history.known or c in history.changed:
                    if history.known and c in history.base:
                        view[c] = history.base[c]
                    else:
                        client_wins = False
            out.conflicted.extend(sorted(whole if len(whole) > 1 else group))
            if client_wins:
                out.values.update(view)
                out.server_lost.update({c: current.get(c) for c in view
                                        if current.get(c) != view[c]})
            else:
                out.client_lost.update(sent)
        out.rule = self.name + (":" + "+".join(sorted(kinds)) if kinds else "")
        out.server_changed = bool(set(history.changed) - set(out.values)) or not history.known
        return out
