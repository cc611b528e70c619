"""A database's schema fingerprint: what a restore must bring back besides the rows.

`schema_fingerprint` reads the catalog (in the backup's snapshot, or in a restored
database) into a JSON-able dict:

- per table (`schema.table`, ordinary and partitioned): columns (type, not null, default),
  indexes that no constraint owns, constraints (NOT NULL is the column's), user triggers;
- sequences: last value (`None`: never used) and the sign of their increment;
- views and materialized views, functions and procedures: a SHA-256 of their definition;
- extensions: name -> version.

Definitions are rendered by the server (pg_get_indexdef, pg_get_constraintdef,
pg_get_triggerdef, pg_get_viewdef, pg_get_functiondef) with `search_path` set to
`pg_catalog`, so every name in them is schema-qualified the same way on both sides.
Owners and privileges are not read: restores use `--no-owner --no-acl`. System schemas
and objects that belong to an extension are left out (the extension brings them).
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

SCHEMA_FORMAT = "backupbot-schema/1"

_USER = """
  {ns}.nspname NOT IN ('pg_catalog', 'information_schema')
  AND {ns}.nspname NOT LIKE 'pg\\_toast%%' AND {ns}.nspname NOT LIKE 'pg\\_temp%%'
"""


def _user(ns: str = "n") -> str:
    return _USER.format(ns=ns)


def _not_ext(catalog: str, oid: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass "
        f"AND d.objid = {oid} AND d.deptype = 'e')"
    )


_TABLES = f"""
SELECT c.oid, n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND {_user()} AND {_not_ext("pg_class", "c.oid")}
ORDER BY 2
"""

_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY(%(oids)s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

_INDEXES = """
SELECT i.indrelid, c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = ANY(%(oids)s)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                  AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
ORDER BY 1, 2
"""

_CONSTRAINTS = """
SELECT k.conrelid, k.conname, pg_get_constraintdef(k.oid)
FROM pg_constraint k
WHERE k.conrelid = ANY(%(oids)s) AND k.contype <> 'n'
ORDER BY 1, 2
"""

_TRIGGERS = """
SELECT t.tgrelid, t.tgname, pg_get_triggerdef(t.oid)
FROM pg_trigger t
WHERE t.tgrelid = ANY(%(oids)s) AND NOT t.tgisinternal
ORDER BY 1, 2
"""

_SEQUENCES = f"""
SELECT n.nspname || '.' || c.relname, s.seqincrement
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_user()} AND {_not_ext("pg_class", "c.oid")}
ORDER BY 1
"""

_SEQUENCE_VALUES = """
SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences
"""

_VIEWS = f"""
SELECT n.nspname || '.' || c.relname, pg_get_viewdef(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND {_user()} AND {_not_ext("pg_class", "c.oid")}
ORDER BY 1
"""

_FUNCTIONS = f"""
SELECT CAST(CAST(p.oid AS regprocedure) AS text), pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p') AND {_user()} AND {_not_ext("pg_proc", "p.oid")}
ORDER BY 1
"""

_EXTENSIONS = "SELECT extname, extversion FROM pg_extension ORDER BY 1"


def digest(text: str) -> str:
    """A definition as its short, stable stand-in in the manifest."""
    return "sha256:" + hashlib.sha256(text.strip().encode()).hexdigest()


def schema_fingerprint(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The fingerprint of the database `conn` is connected to (see the module's doc).
    Runs in the connection's current transaction, if any; `search_path` is set back."""
    row = conn.execute("SELECT current_setting('search_path')").fetchone()
    saved = str(row[0]) if row else "public"
    conn.execute("SELECT set_config('search_path', 'pg_catalog', false)")
    try:
        sequences = _sequences(conn)  # first: they are read before pg_dump reads them
        return {
            "format": SCHEMA_FORMAT,
            "tables": _tables(conn),
            "sequences": sequences,
            "views": {k: digest(v or "") for k, v in conn.execute(_VIEWS).fetchall()},
            "functions": {k: digest(v or "") for k, v in conn.execute(_FUNCTIONS).fetchall()},
            "extensions": {k: v for k, v in conn.execute(_EXTENSIONS).fetchall()},
        }
    finally:
        # after a failed query the transaction takes no more statements: the failure,
        # not a second one, is what the caller must see (its rollback resets the setting)
        if conn.info.transaction_status != TransactionStatus.INERROR:
            conn.execute("SELECT set_config('search_path', %s, false)", [saved])


def _tables(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    names: dict[int, str] = dict(conn.execute(_TABLES).fetchall())
    tables: dict[str, dict[str, Any]] = {
        name: {"columns": {}, "indexes": {}, "constraints": {}, "triggers": {}}
        for name in names.values()
    }
    args = {"oids": list(names)}
    for oid, column, typ, not_null, default in conn.execute(_COLUMNS, args).fetchall():
        tables[names[oid]]["columns"][column] = {
            "type": typ,
            "not_null": bool(not_null),
            "default": default,
        }
    for part, query in (
        ("indexes", _INDEXES),
        ("constraints", _CONSTRAINTS),
        ("triggers", _TRIGGERS),
    ):
        for oid, name, definition in conn.execute(query, args).fetchall():
            tables[names[oid]][part][name] = definition
    return tables


def _sequences(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Each sequence's last value (`None` when never used, or not readable) and whether it
    counts up (`increment` > 0) or down."""
    values: dict[str, Any] = dict(conn.execute(_SEQUENCE_VALUES).fetchall())
    return {
        name: {"last_value": values.get(name), "increment": int(increment)}
        for name, increment in conn.execute(_SEQUENCES).fetchall()
    }
