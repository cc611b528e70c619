"""The schema fingerprint (storage/pgschema.py) and its comparison (commands/schema_compare.py)
against the real PostgreSQL cluster: a database with every kind of object survives a real
pg_dump | pg_restore --no-owner --no-acl with an equal fingerprint, and each kind broken on
purpose in the restored copy is named, alone."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backupbot.commands.schema_compare import (
    FAILED,
    NOT_RECORDED,
    OK,
    SchemaDifference,
    check_schema,
    compare_schema,
    recorded_schema,
    schema_summary,
)
from backupbot.storage.pg_binaries import find_binaries
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.pgschema import SCHEMA_FORMAT, schema_fingerprint

EXTENSION = "pgcrypto"

SCHEMA = """
CREATE EXTENSION pgcrypto;
CREATE SCHEMA sales;
CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id integer NOT NULL CONSTRAINT orders_customer_fk REFERENCES customers (id),
    total numeric(10,2) NOT NULL DEFAULT 0,
    quantity integer NOT NULL CONSTRAINT orders_quantity_check CHECK (quantity > 0),
    code text CONSTRAINT orders_code_key UNIQUE,
    placed_at timestamptz NOT NULL DEFAULT now(),
    tags text[],
    meta jsonb
);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_meta_idx ON orders USING gin (meta) WHERE meta IS NOT NULL;
CREATE FUNCTION touch_order() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN NEW.placed_at := now(); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION touch_order();
CREATE VIEW big_orders AS SELECT id, customer_id FROM orders WHERE quantity > 10;
CREATE FUNCTION order_count(integer) RETURNS bigint LANGUAGE sql
    AS 'SELECT count(*) FROM public.orders WHERE customer_id = $1';
CREATE TABLE sales.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at date);
CREATE TABLE sales.ledger (
    id bigint NOT NULL, at date NOT NULL, customer_id integer REFERENCES customers (id),
    amount numeric CHECK (amount <> 0), PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE sales.ledger_2026 PARTITION OF sales.ledger
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX ledger_customer_idx ON sales.ledger (customer_id);
CREATE TRIGGER ledger_touch BEFORE UPDATE ON sales.ledger
    FOR EACH ROW EXECUTE FUNCTION touch_order();
CREATE MATERIALIZED VIEW sales.totals AS SELECT customer_id, sum(quantity) FROM orders GROUP BY 1;
CREATE SEQUENCE sales.countdown INCREMENT BY -1 MINVALUE 1 MAXVALUE 1000 START 1000;
CREATE SEQUENCE sales.unused;
INSERT INTO customers (email) VALUES ('a@example.com'), ('b@example.com');
INSERT INTO orders (customer_id, total, quantity, code, meta)
    SELECT 1 + i % 2, i * 1.5, i, 'c' || i, jsonb_build_object('i', i)
    FROM generate_series(1, 30) AS i;
SELECT setval('orders_id_seq', 120);
SELECT nextval('sales.countdown'), nextval('sales.countdown');
INSERT INTO sales.events (at) VALUES ('2026-01-01');
INSERT INTO sales.ledger VALUES (1, '2026-03-01', 1, 5);
"""


def _fingerprint(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        return schema_fingerprint(conn)


def _copy(pg: Any, source_url: str, name: str, dump_path: Path) -> str:
    """`source_url` restored into a new database `name` with the real pg_dump/pg_restore,
    the way restores run them (--no-owner --no-acl)."""
    target_url = pg.create_database(name)
    with psycopg.connect(source_url) as conn:
        major = conn.info.server_version // 10000
    tools = find_binaries(major)
    source, target = ConnInfo.from_url(source_url), ConnInfo.from_url(target_url)
    with source.client_env() as env:
        subprocess.run(
            [tools.pg_dump, "--format=custom", "--file", str(dump_path)], env=env, check=True
        )
    with target.client_env() as env:
        argv = [tools.pg_restore, "--no-owner", "--no-acl", "--exit-on-error"]
        subprocess.run([*argv, "-d", target.dbname, str(dump_path)], env=env, check=True)
    return target_url


@pytest.fixture(scope="module")
def databases(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    source_url = pg.create_database(f"schema_src_{worker}")
    with psycopg.connect(source_url, autocommit=True) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = %s", [EXTENSION]
        ).fetchone()
        if available is None:
            pytest.fail(
                f"The {EXTENSION} extension is not available: install PostgreSQL's contrib "
                "modules (Debian: postgresql-contrib, or postgresql-NN's own package).",
                pytrace=False,
            )
        conn.execute(SCHEMA)  # type: ignore[arg-type]
    dump = tmp_path_factory.mktemp("schema") / "source.dump"
    copy_url = _copy(pg, source_url, f"schema_copy_{worker}", dump)
    yield {"source": source_url, "copy": copy_url, "expected": _fingerprint(source_url)}
    pg.drop_database(f"schema_copy_{worker}")
    pg.drop_database(f"schema_src_{worker}")


def test_the_fingerprint_holds_each_kind_of_object(databases: dict[str, Any]) -> None:
    fp = databases["expected"]
    assert fp["format"] == SCHEMA_FORMAT
    orders = fp["tables"]["public.orders"]
    assert orders["columns"]["total"] == {
        "type": "numeric(10,2)",
        "not_null": True,
        "default": "0",
    }
    assert orders["columns"]["id"]["default"] == "nextval('public.orders_id_seq'::regclass)"
    assert orders["columns"]["tags"]["type"] == "text[]"
    assert set(orders["indexes"]) == {"orders_customer_idx", "orders_meta_idx"}  # not the pkey
    assert orders["indexes"]["orders_customer_idx"] == (
        "CREATE INDEX orders_customer_idx ON public.orders USING btree (customer_id)"
    )
    assert set(orders["constraints"]) == {
        "orders_pkey",
        "orders_customer_fk",
        "orders_quantity_check",
        "orders_code_key",
    }
    assert orders["constraints"]["orders_customer_fk"] == (
        "FOREIGN KEY (customer_id) REFERENCES public.customers(id)"
    )
    assert set(orders["triggers"]) == {"orders_touch"}
    assert fp["sequences"]["public.orders_id_seq"] == {"last_value": 120, "increment": 1}
    assert fp["sequences"]["sales.countdown"] == {"last_value": 999, "increment": -1}
    assert fp["sequences"]["sales.unused"]["last_value"] is None
    assert fp["sequences"]["sales.events_id_seq"]["last_value"] == 1
    assert set(fp["views"]) == {"public.big_orders", "sales.totals"}
    ledger = fp["tables"]["sales.ledger_2026"]  # a partition: what it inherits is its own
    assert set(ledger["indexes"]) == {"ledger_2026_customer_id_idx"}
    assert set(ledger["triggers"]) == {"ledger_touch"}
    assert "sales.ledger" in fp["tables"]
    assert fp["views"]["public.big_orders"].startswith("sha256:")
    assert set(fp["functions"]) == {"public.order_count(integer)", "public.touch_order()"}
    assert set(fp["extensions"]) == {"plpgsql", EXTENSION}
    assert fp["extensions"][EXTENSION]  # the version, kept as information
    assert "sales.events" in fp["tables"]


def test_a_real_dump_and_restore_gives_an_equal_fingerprint(databases: dict[str, Any]) -> None:
    restored = _fingerprint(databases["copy"])
    assert restored == databases["expected"]
    assert compare_schema(databases["expected"], restored) == []


def test_the_fingerprint_leaves_the_search_path_as_it_was(databases: dict[str, Any]) -> None:
    with psycopg.connect(databases["copy"], autocommit=True) as conn:
        conn.execute("SET search_path = sales, public")
        schema_fingerprint(conn)
        row = conn.execute("SHOW search_path").fetchone()
    assert row is not None and row[0] == "sales, public"


BREAKS = [
    ("DROP INDEX orders_customer_idx", "index public.orders_customer_idx missing"),
    (
        "ALTER TABLE orders ALTER COLUMN total TYPE integer",
        "column public.orders.total type numeric(10,2) → integer",
    ),
    (
        "ALTER TABLE orders DROP CONSTRAINT orders_quantity_check",
        "constraint orders_quantity_check on public.orders missing",
    ),
    (
        "ALTER TABLE orders DROP CONSTRAINT orders_customer_fk",
        "constraint orders_customer_fk on public.orders missing",
    ),
    (
        "ALTER TABLE orders DROP CONSTRAINT orders_code_key",
        "constraint orders_code_key on public.orders missing",
    ),
    ("DROP TRIGGER orders_touch ON orders", "trigger orders_touch on public.orders missing"),
    (
        "CREATE OR REPLACE VIEW big_orders AS "
        "SELECT id, customer_id FROM orders WHERE quantity > 20",
        "view public.big_orders definition differs",
    ),
    ("DROP FUNCTION order_count(integer)", "function public.order_count(integer) missing"),
    (f"DROP EXTENSION {EXTENSION}", f"extension {EXTENSION} missing"),
    ("ALTER TABLE orders DROP COLUMN tags", "column public.orders.tags missing"),
    (
        "ALTER TABLE orders ALTER COLUMN placed_at DROP NOT NULL",
        "column public.orders.placed_at not null yes → no",
    ),
    (
        "ALTER TABLE orders ALTER COLUMN total SET DEFAULT 1",
        "column public.orders.total default 0 → 1",
    ),
    (
        "DROP INDEX orders_meta_idx; CREATE INDEX orders_meta_idx ON orders USING gin (meta)",
        "index public.orders_meta_idx definition differs",
    ),
    ("DROP SEQUENCE sales.unused", "sequence sales.unused missing"),
]


@pytest.mark.parametrize(("statement", "named"), BREAKS, ids=[b[1] for b in BREAKS])
def test_each_kind_broken_on_purpose_is_named_alone(
    databases: dict[str, Any], statement: str, named: str
) -> None:
    """Each break runs in a transaction that is rolled back: the copy stays intact."""
    with psycopg.connect(databases["copy"]) as conn:
        conn.execute(statement)  # type: ignore[arg-type]
        restored = schema_fingerprint(conn)
        conn.rollback()
    found = compare_schema(databases["expected"], restored)
    assert [str(d.phrase()) for d in found] == [named]
    assert _fingerprint(databases["copy"]) == databases["expected"]


@pytest.mark.parametrize(
    ("sequence", "value", "named"),
    [
        ("public.orders_id_seq", 1, "sequence public.orders_id_seq last value 120 → 1"),
        ("sales.countdown", 1000, "sequence sales.countdown last value 999 → 1000"),
    ],
)
def test_a_sequence_behind_its_recorded_value_is_named(
    databases: dict[str, Any], sequence: str, value: int, named: str
) -> None:
    """setval is not transactional: the value is put back afterwards."""
    expected = databases["expected"]["sequences"][sequence]["last_value"]
    with psycopg.connect(databases["copy"], autocommit=True) as conn:
        conn.execute("SELECT setval(%s, %s)", [sequence, value])
        try:
            restored = schema_fingerprint(conn)
        finally:
            conn.execute("SELECT setval(%s, %s)", [sequence, expected])
    found = compare_schema(databases["expected"], restored)
    assert [str(d.phrase()) for d in found] == [named]
    assert found[0] == SchemaDifference("sequence", sequence, "last value", expected, value)


def test_a_sequence_ahead_of_its_recorded_value_is_fine(databases: dict[str, Any]) -> None:
    """The manifest's value is read just before pg_dump saves its own: the app may have
    moved the sequence on in between, never back."""
    restored = _fingerprint(databases["copy"])
    restored["sequences"]["public.orders_id_seq"]["last_value"] = 130
    restored["sequences"]["sales.countdown"]["last_value"] = 990
    restored["sequences"]["sales.unused"]["last_value"] = 7
    assert compare_schema(databases["expected"], restored) == []


def test_what_a_correct_restore_may_add_or_render_otherwise_is_not_a_difference(
    databases: dict[str, Any],
) -> None:
    restored = _fingerprint(databases["copy"])
    restored["extensions"]["citext"] = "1.6"  # left in an existing target
    restored["extensions"][EXTENSION] = "9.9"  # another server, another version
    restored["functions"]["public.extra()"] = "sha256:0"
    del restored["tables"]["public.customers"]  # the row counts report a missing table
    assert compare_schema(databases["expected"], restored) == []
    restored["views"]["public.big_orders"] = "sha256:rendered-by-another-version"
    restored["tables"]["public.orders"]["indexes"]["orders_customer_idx"] = "CREATE INDEX …"
    check = check_schema(databases["expected"], restored, source_major=15, target_major=16)
    assert check.status == OK and check.differences == ()
    assert "definitions not compared" in (check.note or "")
    same = check_schema(databases["expected"], restored, source_major=16, target_major=16)
    assert same.status == FAILED
    assert [str(d.phrase()) for d in same.differences] == [
        "index public.orders_customer_idx definition differs",
        "view public.big_orders definition differs",
    ]


def test_an_old_manifest_is_not_schema_checked_and_says_why() -> None:
    assert recorded_schema({"row_counts": {}}) == (
        None,
        "the backup's manifest has no schema fingerprint (taken before it was added)",
    )
    schema, why = recorded_schema({"schema": {"format": "backupbot-schema/99"}})
    assert schema is None and why is not None and "backupbot-schema/99" in why
    assert NOT_RECORDED == "not recorded"


def test_the_summary_counts_each_kind(databases: dict[str, Any]) -> None:
    assert schema_summary(databases["expected"]) == (
        "4 indexes, 13 constraints, 3 triggers, 5 sequences, 2 views, 2 functions, 2 extensions"
    )


def test_a_difference_keeps_its_facts_and_wording() -> None:
    d = SchemaDifference("column", "public.orders.total", "type", "numeric(10,2)", "integer")
    record = d.record()
    assert record["text"] == "column public.orders.total type numeric(10,2) → integer"
    assert SchemaDifference.from_record(record) == d
