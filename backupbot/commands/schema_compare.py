"""A restored database's schema against the fingerprint its backup's manifest recorded
(`storage/pgschema.py`), as differences a person can act on.

What a correct restore always passes:
- only what the backup has is checked: objects the target has besides (an extension or a
  function left in an existing target) are not differences, like extra tables;
- a table missing altogether is the row-count check's to report, not repeated here;
- owners and privileges are never compared (restores use `--no-owner --no-acl`);
- extensions by name (another server may have another version);
- a sequence fails only when its restored value is behind the recorded one (before, for
  one counting down): the manifest's value is read just before pg_dump saves its own;
- definitions (indexes, constraints, triggers, column defaults, views, functions) only
  when the target runs the backup's PostgreSQL major version: other versions print them
  differently, so then only presence and column types are checked, and the record says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from backupbot.phrases import Name, Phrase, join, say
from backupbot.storage.pgschema import SCHEMA_FORMAT

OK, FAILED, NOT_RECORDED = "ok", "failed", "not recorded"
MAX_RECORDED = 50  # differences kept in a record; the count is always exact
_TABLE_PARTS = (("index", "indexes"), ("constraint", "constraints"), ("trigger", "triggers"))


@dataclass(frozen=True)
class SchemaDifference:
    """One way the restored schema differs: `kind` of object ("index", "column", ...),
    the `object` by name, `what` differs ("missing", "type", "definition", ...), and the
    backup's (`expected`) and the target's (`actual`) value where there is one."""

    kind: str
    object: str
    what: str
    expected: Any = None
    actual: Any = None

    def phrase(self) -> Phrase:
        """`index public.orders_customer_idx missing`,
        `column public.orders.total type numeric(10,2) → integer`."""
        subject = say("{kind} {name}", kind=self.kind, name=Name(self.object))
        if self.what in ("missing", "definition"):
            return subject + (" missing" if self.what == "missing" else " definition differs")
        return subject + say(
            " {what} {expected} → {actual}",
            what=self.what,
            expected=_shown(self.expected),
            actual=_shown(self.actual),
        )

    def record(self) -> dict[str, Any]:
        """The difference as JSON-able facts, with its wording (`text`)."""
        return {**asdict(self), "text": str(self.phrase())}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> SchemaDifference:
        return cls(
            str(data.get("kind", "")),
            str(data.get("object", "")),
            str(data.get("what", "")),
            data.get("expected"),
            data.get("actual"),
        )


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@dataclass(frozen=True)
class SchemaCheck:
    """The outcome: `status` ok, failed or not recorded; the differences; a `note` on what
    was not compared (an old manifest, another PostgreSQL major version)."""

    status: str
    differences: tuple[SchemaDifference, ...] = ()
    note: str | None = None

    def record(self) -> dict[str, Any]:
        """The facts a `restore.verified` record keeps."""
        facts: dict[str, Any] = {
            "schema": self.status,
            "schema_differences": [d.record() for d in self.differences[:MAX_RECORDED]],
        }
        if len(self.differences) > MAX_RECORDED:
            facts["schema_differences_total"] = len(self.differences)
        if self.note:
            facts["schema_note"] = self.note
        return facts


def schema_summary(schema: dict[str, Any]) -> str:
    """`14 indexes, 12 constraints, 1 trigger, …`: what a fingerprint holds, in brief."""
    tables = (schema.get("tables") or {}).values()
    counts = [(sum(len(t.get(part) or {}) for t in tables), kind) for kind, part in _TABLE_PARTS]
    for kind in ("sequence", "view", "function", "extension"):
        counts.append((len(schema.get(kind + "s") or {}), kind))
    return ", ".join(
        f"{n} {kind}{'' if n == 1 else 'es' if kind == 'index' else 's'}" for n, kind in counts
    )


def recorded_schema(manifest: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest's fingerprint when this version can check it; else None and why not."""
    schema = (manifest or {}).get("schema")
    if not isinstance(schema, dict):
        return None, "the backup's manifest has no schema fingerprint (taken before it was added)"
    if schema.get("format") != SCHEMA_FORMAT:
        return None, f"the manifest's schema fingerprint is {schema.get('format')!r}, not known"
    return schema, None


def check_schema(
    recorded: dict[str, Any], actual: dict[str, Any], *, source_major: int, target_major: int
) -> SchemaCheck:
    """`actual` (the restored database's fingerprint) against `recorded`."""
    definitions = source_major == target_major
    found = tuple(compare_schema(recorded, actual, definitions=definitions))
    note = None
    if not definitions:
        note = (
            f"definitions not compared: the backup is from PostgreSQL {source_major}, the "
            f"target runs {target_major}; presence and column types were"
        )
    return SchemaCheck(FAILED if found else OK, found, note)


def compare_schema(
    expected: dict[str, Any], actual: dict[str, Any], *, definitions: bool = True
) -> list[SchemaDifference]:
    """Every difference of `actual` from `expected`, in a stable order."""
    found = list(_tables(expected.get("tables") or {}, actual.get("tables") or {}, definitions))
    found += _sequences(expected.get("sequences") or {}, actual.get("sequences") or {})
    for kind, part in (("view", "views"), ("function", "functions")):
        found += _named(kind, expected.get(part) or {}, actual.get(part) or {}, definitions)
    extensions = expected.get("extensions") or {}
    found += _named("extension", extensions, actual.get("extensions") or {}, False)
    return found


def _tables(
    expected: dict[str, Any], actual: dict[str, Any], definitions: bool
) -> Iterator[SchemaDifference]:
    for table, want in sorted(expected.items()):
        have = actual.get(table)
        if have is None:
            continue  # the row counts name a missing table
        yield from _columns(
            table, want.get("columns") or {}, have.get("columns") or {}, definitions
        )
        for kind, part in _TABLE_PARTS:
            mine, theirs = want.get(part) or {}, have.get(part) or {}
            for name, definition in sorted(mine.items()):
                label = (
                    f"{table.split('.', 1)[0]}.{name}" if kind == "index" else f"{name} on {table}"
                )
                if name not in theirs:
                    yield SchemaDifference(kind, label, "missing")
                elif definitions and theirs[name] != definition:
                    yield SchemaDifference(kind, label, "definition", definition, theirs[name])


def _columns(
    table: str, expected: dict[str, Any], actual: dict[str, Any], definitions: bool
) -> Iterator[SchemaDifference]:
    for column, want in expected.items():
        name = f"{table}.{column}"
        have = actual.get(column)
        if have is None:
            yield SchemaDifference("column", name, "missing")
            continue
        checks = [("type", "type"), ("not null", "not_null")]
        if definitions:
            checks.append(("default", "default"))
        for what, key in checks:
            if want.get(key) != have.get(key):
                yield SchemaDifference("column", name, what, want.get(key), have.get(key))


def _sequences(expected: dict[str, Any], actual: dict[str, Any]) -> Iterator[SchemaDifference]:
    for name, want in sorted(expected.items()):
        have = actual.get(name)
        if have is None:
            yield SchemaDifference("sequence", name, "missing")
            continue
        recorded, restored = want.get("last_value"), have.get("last_value")
        if recorded is None:
            continue  # never used when the backup was taken: any value is as good
        down = int(want.get("increment") or 1) < 0
        behind = restored is None or (restored > recorded if down else restored < recorded)
        if behind:
            yield SchemaDifference("sequence", name, "last value", recorded, restored)


def _named(
    kind: str,
    expected: dict[str, Any],
    actual: dict[str, Any],
    definitions: bool,
) -> Iterator[SchemaDifference]:
    """Objects by name; their definitions too when `definitions` (for extensions, the
    value is the version, never compared)."""
    for name, want in sorted(expected.items()):
        if name not in actual:
            yield SchemaDifference(kind, name, "missing")
        elif definitions and actual[name] != want:
            yield SchemaDifference(kind, name, "definition", want, actual[name])


def differences_phrase(
    differences: tuple[SchemaDifference, ...] | list[SchemaDifference],
) -> Phrase:
    """`the schema differs from the backup in 2 place(s): index … missing; …`."""
    shown = join((d.phrase() for d in differences[:5]), "; ")
    more = f" (and {len(differences) - 5} more)" if len(differences) > 5 else ""
    return say(
        "the schema differs from the backup in {n} place(s): {shown}{more}",
        n=len(differences),
        shown=shown,
        more=more,
    )
