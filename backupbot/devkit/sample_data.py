"""Sample data for the runbook's tables, and tools to compare databases after a restore.

`load_sample_data` builds the Prisma-style schema from `sample_data.sql`; `database_fingerprint`
describes a database (schema and every row) so that a restored copy can be compared with its
source; `row_counts` mirrors the runbook's "check row counts" step for every user table.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

_USER_SCHEMAS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
"""
# Session settings that make every text rendering below independent of server/client defaults.
_STABLE_SESSION = (
    "SET search_path = pg_catalog",  # catalog functions then schema-qualify every name
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)


@cache
def sample_sql() -> str:
    """The text of `sample_data.sql`."""
    return resources.files(__package__).joinpath("sample_data.sql").read_text(encoding="utf-8")


def load_sample_data(url: str, *, scale: int = 1) -> dict[str, int]:
    """Create the sample schema and rows in the (empty) database at `url`.

    `scale` multiplies every table's row count (scale=1 is about 340 rows in total).
    Runs in one transaction and returns `row_counts(url)`.
    """
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('backupbot.scale', %s, true)", [str(scale)])
        conn.execute(sample_sql())
    return row_counts(url)


def _user_tables(conn: psycopg.Connection[Any], kinds: str = "rp") -> list[tuple[str, str]]:
    relkinds = ", ".join(f"'{kind}'" for kind in kinds if kind in "rpf")
    rows = conn.execute(
        f"""
        SELECT n.nspname, c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ({relkinds}) AND {_USER_SCHEMAS}
        ORDER BY 1, 2
        """
    ).fetchall()
    return [(schema, table) for schema, table in rows]


def row_counts(url: str) -> dict[str, int]:
    """Exact row count of every user table, keyed "schema.table" (e.g. "public.User")."""
    with psycopg.connect(url, autocommit=True) as conn:
        counts: dict[str, int] = {}
        for schema, table in _user_tables(conn):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            row = conn.execute(query).fetchone()
            assert row is not None
            counts[f"{schema}.{table}"] = int(row[0])
        return counts


def _schema(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Catalog description of every user-schema object, with deterministic ordering."""

    def query(text: str) -> list[tuple[Any, ...]]:
        return conn.execute(text.replace("{USER_SCHEMAS}", _USER_SCHEMAS)).fetchall()

    schemas = [
        r[0] for r in query("SELECT n.nspname FROM pg_namespace n WHERE {USER_SCHEMAS} ORDER BY 1")
    ]
    extensions = dict(query("SELECT extname, extversion FROM pg_extension ORDER BY 1"))

    tables: dict[str, Any] = {}
    for key, kind, comment in query(
        """
        SELECT n.nspname || '.' || c.relname, c.relkind::text, obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f') AND {USER_SCHEMAS}
        ORDER BY 1
        """
    ):
        tables[key] = {"kind": kind, "comment": comment, "columns": [], "constraints": {}}
    for key, name, typ, notnull, default, identity, generated, collation, comment in query(
        """
        SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
               a.attgenerated::text,
               CASE WHEN a.attcollation <> t.typcollation THEN co.collname END,
               col_description(c.oid, a.attnum)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        WHERE c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped
          AND {USER_SCHEMAS}
        ORDER BY 1, a.attnum
        """
    ):
        tables[key]["columns"].append(
            {
                "name": name,
                "type": typ,
                "not_null": notnull,
                "default": default,
                "identity": identity,
                "generated": generated,
                "collation": collation,
                "comment": comment,
            }
        )
    for key, name, definition in query(
        """
        SELECT n.nspname || '.' || c.relname, con.conname, pg_get_constraintdef(con.oid, true)
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_SCHEMAS}
        ORDER BY 1, 2
        """
    ):
        tables[key]["constraints"][name] = definition

    indexes = {
        f"{schema}.{name}": definition
        for schema, name, definition in query(
            """
            SELECT n.nspname, i.indexname, i.indexdef
            FROM pg_indexes i JOIN pg_namespace n ON n.nspname = i.schemaname
            WHERE {USER_SCHEMAS}
            ORDER BY 1, 2
            """
        )
    }
    views = {
        key: {"kind": kind, "definition": definition}
        for key, kind, definition in query(
            """
            SELECT n.nspname || '.' || c.relname, c.relkind::text, pg_get_viewdef(c.oid, true)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMAS}
            ORDER BY 1
            """
        )
    }
    enums: dict[str, list[str]] = {}
    for key, label in query(
        """
        SELECT n.nspname || '.' || t.typname, e.enumlabel
        FROM pg_enum e
        JOIN pg_type t ON t.oid = e.enumtypid
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {USER_SCHEMAS}
        ORDER BY 1, e.enumsortorder
        """
    ):
        enums.setdefault(key, []).append(label)

    sequences: dict[str, Any] = {}
    for schema, name, typ, start, inc, lo, hi, cache_size, cycle, owned_by in query(
        """
        SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
               s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
               (SELECT rn.nspname || '.' || r.relname || '.' || a.attname
                  FROM pg_depend d
                  JOIN pg_class r ON r.oid = d.refobjid
                  JOIN pg_namespace rn ON rn.oid = r.relnamespace
                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
        FROM pg_sequence s
        JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_SCHEMAS}
        ORDER BY 1, 2
        """
    ):
        state = conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
        ).fetchone()
        assert state is not None
        sequences[f"{schema}.{name}"] = {
            "type": typ,
            "start": start,
            "increment": inc,
            "min": lo,
            "max": hi,
            "cache": cache_size,
            "cycle": cycle,
            "owned_by": owned_by,
            "last_value": state[0],
            "is_called": state[1],
        }

    triggers = {
        f"{key}.{name}": definition
        for key, name, definition in query(
            """
            SELECT n.nspname || '.' || c.relname, tg.tgname, pg_get_triggerdef(tg.oid, true)
            FROM pg_trigger tg
            JOIN pg_class c ON c.oid = tg.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT tg.tgisinternal AND {USER_SCHEMAS}
            ORDER BY 1, 2
            """
        )
    }
    functions = {
        signature: definition
        for signature, definition in query(
            """
            SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE p.prokind IN ('f', 'p') AND {USER_SCHEMAS}
              AND NOT EXISTS (SELECT 1 FROM pg_depend d
                              WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                AND d.deptype = 'e')
            ORDER BY 1
            """
        )
    }
    return {
        "schemas": schemas,
        "extensions": extensions,
        "tables": tables,
        "indexes": indexes,
        "views": views,
        "enums": enums,
        "sequences": sequences,
        "triggers": triggers,
        "functions": functions,
    }


def _table_rows(
    conn: psycopg.Connection[Any], schema: str, table: str, digest: bool
) -> list[str] | dict[str, Any]:
    """Every row of a table as text, sorted bytewise; or its count and sha256 if `digest`."""
    query = sql.SQL('SELECT t::text FROM {} t ORDER BY t::text COLLATE "C"').format(
        sql.Identifier(schema, table)
    )
    if not digest:
        return [row[0] for row in conn.execute(query)]
    hasher = hashlib.sha256()
    count = 0
    with conn.cursor(name="fingerprint_rows") as cur:
        cur.itersize = 10_000
        cur.execute(query)
        for (text,) in cur:
            hasher.update(text.encode("utf-8"))
            hasher.update(b"\x00")
            count += 1
    return {"count": count, "sha256": hasher.hexdigest()}


def database_fingerprint(url: str, *, digest_rows: bool = False) -> dict[str, Any]:
    """A deterministic, comparable description of a database: its schema and every row.

    Two databases restored from the same dump compare equal; any changed row, sequence
    position or schema object makes them differ. Rows are listed in full (sorted) unless
    `digest_rows` is set, which keeps only each table's row count and sha256 (for big databases).
    Reads one consistent snapshot.
    """
    with psycopg.connect(url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        for statement in _STABLE_SESSION:
            conn.execute(statement.replace("SET ", "SET LOCAL ", 1))
        fingerprint = _schema(conn)
        fingerprint["rows"] = {
            f"{schema}.{table}": _table_rows(conn, schema, table, digest_rows)
            for schema, table in _user_tables(conn, kinds="r")
        }
        conn.rollback()
    return fingerprint
