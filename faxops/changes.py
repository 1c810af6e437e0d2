"""What changed in a campaign's inputs since the last apply: the one-line diff a reviewer reads first.

The last apply records the digest of every input in the lockfile (``applied_with.inputs``); a plan
compares today's files with it. Recipients are counted from the plan itself: numbers with no record
yet are new, recorded numbers the lists no longer hold are gone (and left alone: faxops never
"destroys" a sent fax).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from faxops.plan import Action, Plan

_KINDS = ("manifest", "documents", "recipients", "suppress")
_NAMES = {"manifest": "manifest", "documents": "documents", "recipients": "lists", "suppress": "suppression lists"}


@dataclass
class InputChanges:
    """Files added, removed and changed per kind of input, and recipients new and gone."""

    applied_before: bool  # False: no apply recorded, everything is new
    known: bool = True  # False: the last apply predates input digests in the lockfile
    added: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    changed: dict[str, list[str]] = field(default_factory=dict)
    new_recipients: int = 0
    gone_recipients: int = 0

    def to_json(self) -> dict[str, Any]:
        """The form kept in a saved plan, so that ``show PLANFILE`` prints the same line."""
        return {
            "applied_before": self.applied_before,
            "known": self.known,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "new_recipients": self.new_recipients,
            "gone_recipients": self.gone_recipients,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InputChanges:
        return cls(
            applied_before=bool(doc.get("applied_before")),
            known=bool(doc.get("known", True)),
            added={str(k): list(v) for k, v in dict(doc.get("added") or {}).items()},
            removed={str(k): list(v) for k, v in dict(doc.get("removed") or {}).items()},
            changed={str(k): list(v) for k, v in dict(doc.get("changed") or {}).items()},
            new_recipients=int(doc.get("new_recipients") or 0),
            gone_recipients=int(doc.get("gone_recipients") or 0),
        )

    def line(self) -> str:
        """One line: ``documents: 1 changed (price-list.pdf) · lists: 1 added · recipients: +3 new, -1 gone``."""
        if not self.applied_before:
            return f"first apply: nothing recorded yet · recipients: +{self.new_recipients:,} new"
        parts = []
        if not self.known:
            parts.append("files: not recorded by the last apply (an older faxops)")
        for kind in _KINDS:
            bits = []
            for what, files in (("added", self.added), ("removed", self.removed), ("changed", self.changed)):
                names = files.get(kind, [])
                if names:
                    shown = ", ".join(_short(n) for n in names[:3]) + (", …" if len(names) > 3 else "")
                    bits.append(f"{len(names)} {what} ({shown})" if kind != "manifest" else what)
            if bits:
                parts.append(f"{_NAMES[kind]}: {', '.join(bits)}")
        if self.known and not parts:
            parts.append("no input file changed")
        parts.append(f"recipients: +{self.new_recipients:,} new, −{self.gone_recipients:,} no longer listed")
        return " · ".join(parts)


def _short(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def input_changes(
    plan: Plan, current: Mapping[str, Mapping[str, str]], applied_with: Mapping[str, Any] | None
) -> InputChanges:
    """Compare today's inputs (``Campaign.inputs_by_kind``) with what the last apply recorded (None: none)."""
    new = sum(
        1
        for action in (Action.SEND, Action.DEFER)
        for a in plan.groups[action]
        if a.attempt in (None, 1) and a.status is None
    )
    if applied_with is None:
        return InputChanges(applied_before=False, new_recipients=new)
    changes = InputChanges(applied_before=True, new_recipients=new, gone_recipients=plan.not_in_manifest)
    before = applied_with.get("inputs")
    if not isinstance(before, Mapping):
        changes.known = False
        return changes
    for kind in _KINDS:
        old, now = dict(before.get(kind) or {}), dict(current.get(kind) or {})
        if kind == "manifest":
            # One manifest, whatever its path: compare the digests, not the names.
            if set(old.values()) != set(now.values()):
                changes.changed[kind] = sorted(now)
            continue
        for path in sorted(set(old) | set(now)):
            if path not in old:
                changes.added.setdefault(kind, []).append(path)
            elif path not in now:
                changes.removed.setdefault(kind, []).append(path)
            elif old[path] != now[path]:
                changes.changed.setdefault(kind, []).append(path)
    return changes
