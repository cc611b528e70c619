"""Benchmark: backupbot's verified backup against plain pg_dump on the same machine.

Run by hand from the repository root:

    .venv/bin/python bench/backup_bench.py --size-gb 1

It starts a throwaway PostgreSQL cluster under bench/.work/, builds (or reuses) a database of
realistic mixed data of about --size-gb GB, then times, interleaved round-robin:

  floor          pg_dump -Fc -Z0 > /dev/null
  pg_dump -Fc    pg_dump -Fc (default gzip) to a file, what teams run today
  zstd CLI       pg_dump -Fc -Z0 | zstd -T0 -3 to a file (if the zstd program exists)
  bot local      backupbot backup now, local directory store (read back: a directory
                 keeps no checksum, so backup.verify: checksums applies to S3 only)
  bot local full the same with backup.verify: full set explicitly (a control: same work)
  bot S3         backupbot backup now, S3 store (moto server on 127.0.0.1),
                 backup.verify: checksums (the default)
  bot S3 full    the same with backup.verify: full (the stored copy read back)
  bot local 1/4  (--rss-scaling) backupbot backup now of a database 1/4 the size

and prints the median wall time, the ratio to the floor, the artifact size and the peak RSS of
the backupbot process, checked against the targets. Results also go to bench/results/.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pwd
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql as pgsql  # noqa: E402

from backupbot.devkit.pgcluster import PgCluster, find_pg_bin_dir  # noqa: E402

# ------------------------------------------------------------------------------ targets
TARGET_TIME_RATIO = 1.3  # backupbot wall time <= 1.3 x the floor (pg_dump -Fc -Z0 > /dev/null)
TARGET_S3_TIME_RATIO = 1.5  # ... to S3 (issue 14): <= 1.5 x the floor
TARGET_RSS_BYTES = 150 * 10**6  # peak RSS of the backupbot process <= 150 MB
# artifact: backupbot's artifact <= pg_dump -Fc's file
FLAT_RSS_RATIO = 1.2  # --rss-scaling: full-size peak RSS <= 1.2 x the 1/4-size peak ...
FLAT_RSS_SLACK = 10 * 10**6  # ... or at most 10 MB above it

MB = 10**6
GENERATOR_VERSION = 1  # bump when the data generator changes: forces a rebuild
MAIN_DB = "bench_main"
QUARTER_DB = "bench_quarter"
BUCKET = "backupbot-bench"
POLL_SECONDS = 0.05
INDEX_SHARE = 0.30  # rough share of pg_database_size taken by indexes (calibrated)

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ data generator
def _words(text: str) -> list[str]:
    return text.split()


# Word list, most common first: word indices are drawn skewed towards the start, so the text
# has a natural-language-like frequency distribution (compressible, but not repetitive).
WORDS = _words("""
the of and to in a is that for it as was with be by on not he this are or his from at which
but have an they you were her she there one all we their been has would when if more will no
out so what up said about other into than its time only could new them these some may then do
first any my now such like our over man me even most made after also did many before must
through back years where much your way well down should because each just those people how too
little state good very make world still own see men work long get here between both life being
under never day same another know while last might us great old year off come since against go
came right used take three states himself few house use during without again place american
around however home small found thought went say part once general high upon school every
course does got united left number hand although account order invoice customer payment
shipping delivery warehouse product service support request release deploy server database
backup restore cluster region replica snapshot migration schema table column index query report
dashboard metric alert incident outage latency throughput budget forecast revenue margin
quarter annual monthly weekly daily team manager engineer designer analyst director vendor
partner contract renewal discount coupon cart checkout refund return exchange warranty review
rating feedback survey ticket priority status pending active closed resolved escalated blocked
urgent minor major critical feature bug issue task sprint milestone roadmap launch campaign
email newsletter webinar conference meeting agenda notes summary decision action follow owner
deadline estimate scope risk mitigation compliance audit security privacy policy access token
password session login account profile settings preferences notification message channel
thread reply mention attachment document spreadsheet presentation draft final version approved
rejected submitted archived deleted updated created modified scheduled completed failed retried
quickly slowly carefully clearly simply really probably usually often sometimes always never
red blue green yellow black white bright dark large small early late fast slow easy hard simple
complex north south east west city river mountain valley forest ocean island bridge street
market garden kitchen office station airport hotel museum library hospital university village
""")
FIRST_NAMES = _words("""
James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard
Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty
Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua
Michelle Kenneth Carol Kevin Amanda Brian Dorothy George Melissa Timothy Deborah Aarav Ananya
Wei Mei Hiroshi Yuki Lukas Emma Mateo Sofia Olga Ivan Fatima Omar Chen Priya Jose Lucia Noah
""")
LAST_NAMES = _words("""
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Mueller Schmidt
Schneider Fischer Weber Rossi Russo Ferrari Dubois Moreau Tanaka Suzuki Sato Kim Park Singh
Patel Kumar Silva Santos Oliveira Ivanov Petrov Novak Kowalski Jensen Hansen Larsen Berg
""")
CITIES = _words("""
Berlin Paris London Madrid Rome Lisbon Dublin Amsterdam Vienna Prague Warsaw Stockholm Oslo
Helsinki Copenhagen Zurich Munich Hamburg Lyon Milan Barcelona Boston Chicago Denver Seattle
Austin Toronto Vancouver Montreal Tokyo Osaka Seoul Singapore Sydney Melbourne Auckland Mumbai
Delhi Bangalore Dubai Cairo Lagos Nairobi Johannesburg Lima Bogota Santiago Mexico Houston
""")
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.43 Mobile Safari/537.36",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "okhttp/4.12.0",
]
EVENT_KINDS = [
    "page_view",
    "page_view",
    "page_view",
    "click",
    "click",
    "search",
    "signup",
    "login",
    "logout",
    "add_to_cart",
    "checkout",
    "api_call",
    "api_call",
    "error",
]
DOMAINS = ["example.com", "mail.test", "corp.example", "inbox.test", "example.org"]
ORDER_STATUSES = ["delivered"] * 6 + ["shipped", "shipped", "paid", "pending", "refunded", "void"]
HTTP_STATUSES = ["200"] * 12 + ["201", "204", "301", "304", "400", "401", "404", "500"]
COUNTRIES = ["US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "NL", "SE", "ES", "IT", "AU", "MX"]


def _arr(values: list[str]) -> str:
    """A text[] literal for embedding in SQL (values contain no quotes)."""
    inner = ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "'{" + inner.replace("'", "''") + "}'::text[]"


def _h(expr: str, salt: int) -> str:
    """A deterministic non-negative pseudo-random bigint derived from `expr`."""
    return f"(hashint8extended(({expr})::bigint, {salt}) & 9223372036854775807)"


def _pick(values: list[str], expr: str, salt: int) -> str:
    return f"({_arr(values)})[1 + {_h(expr, salt)} % {len(values)}]"


def _text(row: str, min_words: int, max_words: int, salt: int) -> str:
    """Random prose for row `row`: words drawn with a skew towards common ones, sentences."""
    n = len(WORDS)
    count = f"{min_words} + ({_h(row, salt + 1)} % {max_words - min_words + 1})::int"
    u = f"({_h(f'({row})::bigint * 4096 + k', salt)} % 1000003)::float8 / 1000003"
    return (
        f"(SELECT string_agg(({_arr(WORDS)})[1 + (({n} * u * u)::int % {n})], "
        f"CASE WHEN k % 13 = 0 THEN '. ' WHEN k % 29 = 0 THEN ', ' ELSE ' ' END) "
        f"FROM (SELECT k, {u} AS u FROM generate_series(1, {count}) k) words)"
    )


SCHEMA_SQL = """
CREATE TABLE customers (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    full_name text NOT NULL,
    country char(2) NOT NULL,
    city text NOT NULL,
    plan text NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    last_login_at timestamptz,
    balance numeric(12,2) NOT NULL,
    lifetime_value numeric(14,2) NOT NULL,
    api_key text NOT NULL,
    marketing_opt_in boolean NOT NULL
);
CREATE TABLE orders (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL,
    placed_at timestamptz NOT NULL,
    status text NOT NULL,
    currency char(3) NOT NULL,
    item_count integer NOT NULL,
    subtotal numeric(12,2) NOT NULL,
    tax numeric(12,2) NOT NULL,
    total numeric(12,2) NOT NULL,
    shipping_address text NOT NULL,
    tracking_code text,
    note text
);
CREATE TABLE events (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    customer_id bigint NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL
);
CREATE TABLE articles (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    author_id bigint NOT NULL,
    published_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    title text NOT NULL,
    slug text NOT NULL,
    body text NOT NULL,
    word_count integer NOT NULL,
    rating numeric(3,2),
    content_hash text NOT NULL
);
"""

INDEX_SQL = [
    "CREATE UNIQUE INDEX customers_email_key ON customers (email)",
    "CREATE INDEX customers_created_at_idx ON customers (created_at)",
    "CREATE INDEX orders_customer_id_idx ON orders (customer_id)",
    "CREATE INDEX orders_placed_at_idx ON orders (placed_at)",
    "CREATE INDEX events_occurred_at_idx ON events (occurred_at)",
    "CREATE INDEX events_customer_kind_idx ON events (customer_id, kind)",
    "CREATE INDEX events_payload_gin ON events USING gin (payload)",
    "CREATE INDEX articles_author_published_idx ON articles (author_id, published_at)",
    "CREATE UNIQUE INDEX articles_slug_key ON articles (slug)",
]
CONSTRAINT_SQL = [
    "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk "
    "FOREIGN KEY (customer_id) REFERENCES customers (id)",
    "ALTER TABLE events ADD CONSTRAINT events_customer_fk "
    "FOREIGN KEY (customer_id) REFERENCES customers (id)",
    "ALTER TABLE articles ADD CONSTRAINT articles_author_fk "
    "FOREIGN KEY (author_id) REFERENCES customers (id)",
]

# Rows of each table per generation round at factor 1.0: about 68 MB of heap, 100 MB with
# indexes, split roughly customers 10%, orders 25%, events (with its GIN index) 35%,
# articles 30%.
ROUND_ROWS = {"customers": 30_000, "orders": 100_000, "events": 30_000, "articles": 16_000}


def _insert_sql(table: str) -> str:
    """INSERT ... SELECT for ids :lo:..:hi:; :maxc: is the highest customer id (filled in by
    `_fill`; the text holds literal `%` operators, so it is run without driver parameters)."""
    g = "g"
    if table == "customers":
        return f"""
INSERT INTO customers (id, email, full_name, country, city, plan, status, created_at,
                       last_login_at, balance, lifetime_value, api_key, marketing_opt_in)
SELECT g,
  lower(fn) || '.' || lower(ln) || g || '@' || {_pick(DOMAINS, g, 11)},
  fn || ' ' || ln,
  {_pick(COUNTRIES, g, 12)},
  {_pick(CITIES, g, 13)},
  {_pick(["free", "free", "free", "starter", "pro", "pro", "enterprise"], g, 14)},
  CASE WHEN {_h(g, 15)} % 23 = 0 THEN 'suspended' WHEN {_h(g, 15)} % 7 = 0 THEN 'trial'
       ELSE 'active' END,
  timestamptz '2018-01-01 00:00:00+00' + (g * 90 + {_h(g, 16)} % 90) * interval '1 second',
  CASE WHEN {_h(g, 17)} % 5 = 0 THEN NULL
       ELSE timestamptz '2024-01-01 00:00:00+00' + ({_h(g, 18)} % 31536000) * interval '1 second'
  END,
  (({_h(g, 19)} % 2000000) - 400000)::numeric / 100,
  ({_h(g, 20)} % 100000000)::numeric / 100,
  'sk_live_' || md5(g::text || 'api') || substr(md5(g::text || 'key'), 1, 8),
  {_h(g, 21)} % 3 = 0
FROM (SELECT g, {_pick(FIRST_NAMES, g, 1)} AS fn, {_pick(LAST_NAMES, g, 2)} AS ln
      FROM generate_series(:lo:::bigint, :hi:::bigint) g OFFSET 0) s
"""
    if table == "orders":
        street_kinds = ["St", "Ave", "Rd", "Blvd", "Lane", "Way", "Strasse", "Rue"]
        return f"""
INSERT INTO orders (id, customer_id, placed_at, status, currency, item_count, subtotal, tax,
                    total, shipping_address, tracking_code, note)
SELECT g, 1 + {_h(g, 31)} % :maxc:::bigint,
  timestamptz '2020-01-01 00:00:00+00' + (g * 25 + {_h(g, 32)} % 25) * interval '1 second',
  {_pick(ORDER_STATUSES, g, 33)},
  {_pick(["USD", "USD", "USD", "EUR", "EUR", "GBP", "JPY", "INR"], g, 34)},
  item_count,
  subtotal,
  round(subtotal * 0.0825, 2),
  subtotal + round(subtotal * 0.0825, 2),
  (1 + {_h(g, 35)} % 9999) || ' ' || initcap({_pick(WORDS, g, 36)}) || ' '
    || {_pick(street_kinds, g, 37)} || ', ' || {_pick(CITIES, g, 38)}
    || ' ' || lpad(({_h(g, 39)} % 100000)::text, 5, '0'),
  CASE WHEN {_h(g, 40)} % 4 = 0 THEN NULL
       ELSE upper(substr(md5(g::text || 'trk'), 1, 18)) END,
  CASE WHEN {_h(g, 41)} % 3 = 0 THEN {_text(g, 3, 24, 42)} ELSE NULL END
FROM (SELECT g, 1 + ({_h(g, 43)} % 12)::int AS item_count,
             (500 + {_h(g, 44)} % 50000)::numeric / 100 AS subtotal
      FROM generate_series(:lo:::bigint, :hi:::bigint) g OFFSET 0) s
"""
    if table == "events":
        return f"""
INSERT INTO events (id, occurred_at, customer_id, kind, payload)
SELECT g,
  timestamptz '2023-01-01 00:00:00+00' + (g * 3 + {_h(g, 51)} % 3) * interval '1 second',
  cust, kind,
  jsonb_build_object(
    'request_id', md5(g::text || 'req'),
    'session_id', substr(md5((g / 25)::text || 'sess'), 1, 24),
    'ip', '10.' || ({_h(g, 52)} % 256) || '.' || ({_h(g, 53)} % 256) || '.'
          || ({_h(g, 54)} % 256),
    'user_agent', {_pick(USER_AGENTS, g, 55)},
    'path', '/' || {_pick(WORDS, g, 56)} || '/' || {_pick(WORDS, g, 57)} || '/'
            || ({_h(g, 58)} % 5000),
    'status', {_pick(HTTP_STATUSES, g, 59)}::int,
    'duration_ms', round((({_h(g, 60)} % 1000000)::numeric / 1000000) ^ 3 * 4000, 2),
    'tags', jsonb_build_array({_pick(WORDS, g, 61)}, {_pick(WORDS, g, 62)}),
    'geo', jsonb_build_object(
        'country', {_pick(COUNTRIES, g, 63)}, 'city', {_pick(CITIES, g, 64)},
        'lat', round((({_h(g, 65)} % 180000000)::numeric / 1000000) - 90, 6),
        'lon', round((({_h(g, 66)} % 360000000)::numeric / 1000000) - 180, 6)),
    'props', jsonb_build_object(
        'plan', {_pick(["free", "starter", "pro", "enterprise"], g, 67)},
        'experiment', 'exp_' || ({_h(g, 68)} % 40),
        'variant', {_pick(["control", "a", "b"], g, 69)},
        'logged_in', {_h(g, 70)} % 4 <> 0)
  ) || CASE WHEN kind = 'search' THEN jsonb_build_object('query', {_text(g, 1, 6, 71)})
            WHEN kind = 'error' THEN jsonb_build_object('error', {_text(g, 6, 30, 73)},
                 'code', 'E' || ({_h(g, 75)} % 900 + 100))
            ELSE '{{}}'::jsonb END
FROM (SELECT g, 1 + {_h(g, 76)} % :maxc:::bigint AS cust, {_pick(EVENT_KINDS, g, 77)} AS kind
      FROM generate_series(:lo:::bigint, :hi:::bigint) g OFFSET 0) s
"""
    if table == "articles":
        return f"""
INSERT INTO articles (id, author_id, published_at, updated_at, title, slug, body, word_count,
                      rating, content_hash)
SELECT g, 1 + {_h(g, 81)} % :maxc:::bigint, published_at,
  published_at + ({_h(g, 82)} % 8000000) * interval '1 second',
  initcap(title), lower(replace(title, ' ', '-')) || '-' || g,
  body, array_length(string_to_array(body, ' '), 1),
  CASE WHEN {_h(g, 83)} % 5 = 0 THEN NULL ELSE (100 + {_h(g, 84)} % 401)::numeric / 100 END,
  encode(sha256(convert_to(body, 'UTF8')), 'hex')
FROM (SELECT g,
             timestamptz '2015-01-01 00:00:00+00' + (g * 600 + {_h(g, 85)} % 600)
               * interval '1 second' AS published_at,
             {_text(g, 3, 9, 86)} AS title,
             {_text(g, 30, 520, 88)} AS body
      FROM generate_series(:lo:::bigint, :hi:::bigint) g OFFSET 0) s
"""
    raise ValueError(table)


# ------------------------------------------------------------------------------ dataset


def _marker(target_bytes: int) -> dict[str, Any]:
    return {"bench": "backupbot", "generator": GENERATOR_VERSION, "target_bytes": target_bytes}


def read_marker(cluster: PgCluster, dbname: str) -> dict[str, Any] | None:
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [dbname],
        ).fetchone()
    if row is None or not row[0]:
        return None
    try:
        value = json.loads(row[0])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def database_size(cluster: PgCluster, dbname: str) -> int:
    with psycopg.connect(cluster.url(dbname), autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def build_database(cluster: PgCluster, dbname: str, target_bytes: int) -> None:
    """(Re)create `dbname` with about `target_bytes` of mixed data (pg_database_size)."""
    started = time.monotonic()
    url = cluster.create_database(dbname)
    base = database_size(cluster, dbname)
    heap_target = max(int((target_bytes - base) * (1 - INDEX_SHARE)), 1 << 20)
    log(f"building {dbname}: target {target_bytes / MB:.0f} MB (heap {heap_target / MB:.0f} MB)")

    def connect() -> psycopg.Connection[Any]:
        conn = psycopg.connect(url, autocommit=True)
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET work_mem = '64MB'")
        return conn

    with connect() as conn:
        conn.execute(SCHEMA_SQL)

    workers = max(1, min(4, os.cpu_count() or 1))
    conns = [connect() for _ in range(workers)]
    free = list(conns)
    lock = threading.Lock()

    def run(statement: str, params: dict[str, int] | None = None) -> None:
        for key, value in (params or {}).items():
            statement = statement.replace(f":{key}:", str(int(value)))
        with lock:
            conn = free.pop()
        try:
            conn.execute(statement.encode())
        finally:
            with lock:
                free.append(conn)

    statements = {t: _insert_sql(t) for t in ROUND_ROWS}
    next_id = dict.fromkeys(ROUND_ROWS, 1)
    factor = min(1.0, heap_target / (68 * MB) / 4)  # small databases: several rounds
    per_round: float | None = None
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            heap = 0
            while heap < heap_target:
                scale = factor
                if per_round is not None and heap_target - heap < per_round:
                    scale = factor * max(0.05, (heap_target - heap) / per_round)
                # customers first so orders/events/articles can reference every customer
                n = max(1, int(ROUND_ROWS["customers"] * scale))
                lo = next_id["customers"]
                run(statements["customers"], {"lo": lo, "hi": lo + n - 1, "maxc": 1})
                next_id["customers"] += n
                maxc = next_id["customers"] - 1
                futures = []
                for table in ("orders", "events", "articles"):
                    n = max(1, int(ROUND_ROWS[table] * scale))
                    lo = next_id[table]
                    params = {"lo": lo, "hi": lo + n - 1, "maxc": maxc}
                    futures.append(pool.submit(run, statements[table], params))
                    next_id[table] += n
                for fut in futures:
                    fut.result()
                before = heap
                heap = database_size(cluster, dbname) - base
                if per_round is None and scale == factor:
                    per_round = max(heap - before, 1)
                log(
                    f"  {dbname}: {heap / MB:7.1f} / {heap_target / MB:.0f} MB of rows "
                    f"({time.monotonic() - started:.0f} s)"
                )
            log(f"  {dbname}: indexes, constraints, VACUUM ANALYZE")
            for fut in [pool.submit(run, s) for s in INDEX_SQL]:
                fut.result()
            for fut in [pool.submit(run, s) for s in CONSTRAINT_SQL]:
                fut.result()
            for table, nxt in next_id.items():
                run(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {nxt})")
            for fut in [pool.submit(run, f"VACUUM (ANALYZE) {t}") for t in ROUND_ROWS]:
                fut.result()
    finally:
        for conn in conns:
            conn.close()
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(
            pgsql.SQL("COMMENT ON DATABASE {} IS {}").format(
                pgsql.Identifier(dbname), pgsql.Literal(json.dumps(_marker(target_bytes)))
            )
        )
        conn.execute("CHECKPOINT")
    size = database_size(cluster, dbname)
    log(
        f"built {dbname}: {size / MB:.0f} MB (target {target_bytes / MB:.0f} MB) "
        f"in {time.monotonic() - started:.0f} s"
    )


def ensure_database(cluster: PgCluster, dbname: str, target_bytes: int, rebuild: bool) -> int:
    marker = read_marker(cluster, dbname)
    if not rebuild and marker == _marker(target_bytes):
        size = database_size(cluster, dbname)
        log(f"reusing {dbname}: {size / MB:.0f} MB (target {target_bytes / MB:.0f} MB)")
        return size
    if marker is not None and not rebuild:
        log(f"{dbname} was built for another size or generator version; rebuilding")
    build_database(cluster, dbname, target_bytes)
    return database_size(cluster, dbname)


def server_version(cluster: PgCluster) -> str:
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def table_stats(cluster: PgCluster, dbname: str) -> list[dict[str, Any]]:
    with psycopg.connect(cluster.url(dbname), autocommit=True) as conn:
        rows = conn.execute(
            """
            SELECT c.relname, c.reltuples::bigint, pg_table_size(c.oid), pg_indexes_size(c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1
            """
        ).fetchall()
    return [
        {"table": r[0], "rows": int(r[1]), "table_bytes": int(r[2]), "index_bytes": int(r[3])}
        for r in rows
    ]


# ------------------------------------------------------------------------------ processes

_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


@contextlib.contextmanager
def tracked(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Registers a child; if the bench is interrupted meanwhile, the child is stopped."""
    with _live_lock:
        _live.add(proc)
    try:
        yield proc
    except BaseException:
        stop_child(proc)
        raise
    finally:
        with _live_lock:
            _live.discard(proc)


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT first (backupbot then aborts its upload and stops its pg_dump, as on Ctrl-C),
    then SIGTERM, then SIGKILL."""
    for sig, grace in ((signal.SIGINT, 15), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)


def kill_live_children() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        stop_child(proc)


class RssSampler(threading.Thread):
    """Peak resident memory of one process (not its children), sampled every 50 ms.

    Reads both the current RSS (psutil) and the kernel's high-water mark (VmHWM in
    /proc/PID/status), so a short spike between two samples is still seen.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._halt = threading.Event()
        self._proc = psutil.Process(pid)
        self._status = Path(f"/proc/{pid}/status")

    def _sample(self) -> bool:
        try:
            rss = self._proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return False
        hwm = 0
        with contextlib.suppress(OSError):
            m = re.search(r"^VmHWM:\s+(\d+) kB", self._status.read_text(), re.M)
            if m:
                hwm = int(m.group(1)) * 1024
        self.peak = max(self.peak, rss, hwm)
        self.samples += 1
        return True

    def run(self) -> None:
        while self._sample() and not self._halt.wait(POLL_SECONDS):
            pass

    def stop(self) -> int:
        self._halt.set()
        self.join(timeout=5)
        return self.peak


def pg_env(cluster: PgCluster, dbname: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        PGHOST=cluster.host,
        PGPORT=str(cluster.port),
        PGUSER=cluster.superuser,
        PGDATABASE=dbname,
        PGPASSWORD=cluster.password,
        LC_MESSAGES="C",
    )
    return env


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------ variants


@dataclass
class Run:
    variant: str
    round: int
    seconds: float
    ok: bool
    artifact_bytes: int | None = None
    raw_bytes: int | None = None
    peak_rss_bytes: int | None = None
    phases: dict[str, float] = field(default_factory=dict)
    backup_id: str | None = None
    error: str | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds, see `CpuMeter`


@dataclass
class Variant:
    key: str
    label: str
    command: str
    fn: Callable[[int], Run]
    is_bot: bool = False
    database: str = MAIN_DB


class CpuMeter:
    """CPU seconds (user + system) a run cost, by who spent them: `client` = this
    process's reaped children and theirs (backupbot, pg_dump, zstd), `server` = the
    PostgreSQL backends the postmaster reaped (its cutime + cstime in /proc), `bench` =
    this process itself (moto's threads for the S3 variants, the RSS sampler)."""

    def __init__(self, postmaster_pid: int | None) -> None:
        self._pid = postmaster_pid

    def _server(self) -> float:
        if self._pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self._pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[13]) + int(fields[14])) / ticks  # cutime, cstime

    def snapshot(self) -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "client": children.ru_utime + children.ru_stime,
            "server": self._server(),
            "bench": me.ru_utime + me.ru_stime,
        }

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: after[k] - before[k] for k in before}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work_dir).absolute()
        self.out = self.work / "out"
        self.logs = self.work / "logs"
        self.cluster: PgCluster | None = None
        self.moto: Any = None
        self.s3_endpoint: str | None = None
        self.s3: Any = None
        self.pg_bin: Path | None = None
        self.zstd = shutil.which("zstd")
        self.bot_cmd: list[str] = []
        self.bot_env: dict[str, str] = {}
        self.configs: dict[str, Path] = {}

    # ---------------------------------------------------------------- setup
    def password(self) -> str:
        path = self.work / "pg-password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(18), encoding="utf-8")
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()

    def stop_stale_server(self, pg_dir: Path, bin_dir: Path) -> None:
        """A previous run killed hard may have left its server running: stop it."""
        data = pg_dir / "data"
        if not (data / "postmaster.pid").exists():
            return
        log(f"stopping a server left running in {data}")
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"],
            capture_output=True,
            cwd=pg_dir,
            timeout=120,
            check=False,
            **kwargs,
        )

    def start_cluster(self) -> PgCluster:
        pg_dir = self.work / "pg"
        self.pg_bin = find_pg_bin_dir()
        self.stop_stale_server(pg_dir, self.pg_bin)
        cluster = PgCluster(pg_dir, password=self.password(), bin_dir=self.pg_bin)
        self.cluster = cluster
        cluster.start()
        log(f"PostgreSQL {cluster.server_version_num} on {cluster.host}:{cluster.port}")
        return cluster

    def start_moto(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        os.environ.update(AWS_ENV)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.moto.start()
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        import boto3

        self.s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1")
        self.s3.create_bucket(Bucket=BUCKET)
        log(f"moto S3 on {self.s3_endpoint}, bucket {BUCKET}")

    def write_configs(self) -> None:
        assert self.cluster is not None
        dbs = [(MAIN_DB, "BENCH_DB_URL_MAIN")]
        if self.args.rss_scaling:
            dbs.append((QUARTER_DB, "BENCH_DB_URL_QUARTER"))
        databases = "".join(
            f"  - name: {name}\n    url: ${{{var}}}\n    schedule: '0 3 * * *'\n"
            for name, var in dbs
        )
        s3 = (
            f"storage:\n  s3:\n    bucket: {BUCKET}\n    prefix: bench/\n"
            f"    region: us-east-1\n    endpoint_url: {self.s3_endpoint}\n"
        )
        local = f"storage:\n  local:\n    path: {self.work / 'store-local'}\n"
        stores = {  # kind -> (storage, backup.verify)
            "local": (local, None),  # the default: read back, as with verify: full
            "localfull": (local, "full"),
            "s3": (s3, None),  # verify: checksums, the default
            "s3full": (s3, "full"),
        }
        if self.args.no_s3:
            stores = {k: v for k, v in stores.items() if k.startswith("local")}
        for kind, (storage, verify) in stores.items():
            common = (
                f"databases:\n{databases}"
                f"backup:\n  compression_level: {self.args.level}\n"
                + (f"  verify: {verify}\n" if verify else "")
                + "logging:\n  level: WARNING\n  format: text\n"
            )
            state = self.work / f"state-{kind}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{state}{suffix}").unlink(missing_ok=True)
            path = self.work / f"backupbot-{kind}.yml"
            path.write_text(f"state_url: sqlite:///{state}\n{storage}{common}", encoding="utf-8")
            self.configs[kind] = path
        shutil.rmtree(self.work / "store-local", ignore_errors=True)

        installed = Path(sys.executable).with_name("backupbot")
        if installed.exists():
            self.bot_cmd = [str(installed)]
        else:  # package not pip-installed in the venv: run the CLI module from the checkout
            self.bot_cmd = [sys.executable, "-m", "backupbot.bot.cli.main"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(AWS_ENV)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["BENCH_DB_URL_MAIN"] = self.cluster.url(MAIN_DB)
        env["BENCH_DB_URL_QUARTER"] = self.cluster.url(QUARTER_DB)
        for key in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
            env.pop(key, None)
        self.bot_env = env

    def bot(self, kind: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.bot_cmd, "--config", str(self.configs[kind]), *args],
            capture_output=True,
            text=True,
            env=self.bot_env,
            cwd=self.work,
            timeout=timeout,
            check=False,
        )

    def prepare_bot(self) -> None:
        """Create the state databases (migrations) and check the configs, outside timing."""
        for kind in self.configs:
            result = self.bot(kind, "config", "check", "--live")
            if result.returncode != 0:
                raise SystemExit(
                    f"backupbot config check failed for the {kind} store "
                    f"(exit {result.returncode}):\n{result.stdout}{result.stderr}"
                )
            result = self.bot(kind, "status", "--json")
            if result.returncode not in (0, 1):
                raise SystemExit(f"backupbot status failed:\n{result.stdout}{result.stderr}")

    # ---------------------------------------------------------------- pg_dump variants
    def pg_dump_args(self, *extra: str) -> list[str]:
        assert self.pg_bin is not None
        return [str(self.pg_bin / "pg_dump"), "--format=custom", "--no-password", *extra]

    def _finish(self, proc: subprocess.Popen[bytes], name: str, err_path: Path) -> str | None:
        rc = proc.wait()
        if rc == 0:
            return None
        return f"{name} exited {rc}: {err_path.read_text(errors='replace')[-2000:]}"

    def run_floor(self, rnd: int, dbname: str = MAIN_DB) -> Run:
        assert self.cluster is not None
        err = self.logs / "floor.stderr"
        with err.open("wb") as errf:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                self.pg_dump_args("--compress=0"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errf,
                env=pg_env(self.cluster, dbname),
            )
            with tracked(proc):
                error = self._finish(proc, "pg_dump", err)
            seconds = time.perf_counter() - t0
        return Run("floor", rnd, seconds, error is None, error=error)

    def run_pg_dump_gzip(self, rnd: int) -> Run:
        assert self.cluster is not None
        target = self.out / "pg_dump-Fc.dump"
        target.unlink(missing_ok=True)
        err = self.logs / "pg_dump-Fc.stderr"
        with err.open("wb") as errf:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                self.pg_dump_args(f"--file={target}"),  # pg_dump fsyncs the file itself
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errf,
                env=pg_env(self.cluster, MAIN_DB),
            )
            with tracked(proc):
                error = self._finish(proc, "pg_dump", err)
            seconds = time.perf_counter() - t0
        size = target.stat().st_size if target.exists() else None
        target.unlink(missing_ok=True)
        return Run("pg_dump_gzip", rnd, seconds, error is None, artifact_bytes=size, error=error)

    def run_zstd_cli(self, rnd: int) -> Run:
        assert self.cluster is not None and self.zstd is not None
        target = self.out / "pg_dump-Z0.dump.zst"
        target.unlink(missing_ok=True)
        err_dump = self.logs / "zstd-cli.pg_dump.stderr"
        err_zstd = self.logs / "zstd-cli.zstd.stderr"
        level = f"-{self.args.level}"
        with err_dump.open("wb") as e1, err_zstd.open("wb") as e2, target.open("wb") as outf:
            t0 = time.perf_counter()
            dump = subprocess.Popen(
                self.pg_dump_args("--compress=0"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=e1,
                env=pg_env(self.cluster, MAIN_DB),
            )
            with tracked(dump):
                assert dump.stdout is not None
                zstd = subprocess.Popen(
                    [self.zstd, "-T0", level, "-q", "-c"],
                    stdin=dump.stdout,
                    stdout=outf,
                    stderr=e2,
                )
                dump.stdout.close()  # zstd holds the read end now
                with tracked(zstd):
                    error_zstd = self._finish(zstd, "zstd", err_zstd)
                error = self._finish(dump, "pg_dump", err_dump) or error_zstd
            os.fsync(outf.fileno())  # like pg_dump --file and backupbot's local store
            seconds = time.perf_counter() - t0
        size = target.stat().st_size if target.exists() else None
        target.unlink(missing_ok=True)
        return Run("zstd_cli", rnd, seconds, error is None, artifact_bytes=size, error=error)

    # ---------------------------------------------------------------- backupbot variants
    def run_bot(self, key: str, kind: str, dbname: str, rnd: int) -> Run:
        stages: dict[str, float] = {}
        lines: list[str] = []
        cmd = [*self.bot_cmd, "--config", str(self.configs[kind]), "backup", "now", dbname]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.bot_env,
            cwd=self.work,
        )
        with tracked(proc):
            sampler = RssSampler(proc.pid)
            sampler.start()
            assert proc.stderr is not None and proc.stdout is not None
            stderr = proc.stderr

            def read_stderr() -> None:
                for raw in iter(stderr.readline, b""):
                    line = raw.decode("utf-8", "replace").rstrip()
                    lines.append(line)
                    m = re.match(r"^\[\S+\] (snapshot|dumping|verifying)\b", line)
                    if m and m.group(1) not in stages:
                        stages[m.group(1)] = time.perf_counter() - t0
                    elif re.match(r"^backup \S+ of \S+ verified: ", line):
                        stages["verified"] = time.perf_counter() - t0

            reader = threading.Thread(target=read_stderr, daemon=True)
            reader.start()
            stdout = proc.stdout.read().decode("utf-8", "replace")
            rc = proc.wait()
            seconds = time.perf_counter() - t0
            peak = sampler.stop()
            reader.join(timeout=10)
        run = Run(key, rnd, seconds, rc == 0, peak_rss_bytes=peak or None)
        if sampler.samples == 0:
            run.peak_rss_bytes = None
        if {"snapshot", "dumping", "verifying", "verified"} <= stages.keys():
            run.phases = {
                "startup": stages["snapshot"],
                "snapshot": stages["dumping"] - stages["snapshot"],
                "dump": stages["verifying"] - stages["dumping"],
                "verify": stages["verified"] - stages["verifying"],
                "exit": seconds - stages["verified"],
            }
        backup_id = stdout.strip().splitlines()[-1] if stdout.strip() else None
        run.backup_id = backup_id
        if rc != 0 or not backup_id:
            run.ok = False
            run.error = f"exit {rc}: " + "\n".join(lines[-20:])
            return run
        self.collect_artifact(run, kind, dbname)
        return run

    def collect_artifact(self, run: Run, kind: str, dbname: str) -> None:
        """Sizes from `backupbot status --json`, checked against the stored object; then
        the artifact is deleted (keeps disk and moto's memory flat across repetitions)."""
        result = self.bot(kind, "status", dbname, "--json")
        try:
            last = json.loads(result.stdout)[0]["last_success"]
        except (ValueError, LookupError, TypeError):
            run.ok = False
            run.error = f"status --json unreadable: {result.stdout[-500:]}{result.stderr[-500:]}"
            return
        if not last or last.get("id") != run.backup_id:
            run.ok = False
            run.error = f"status --json does not show backup {run.backup_id} as the last success"
            return
        run.artifact_bytes = last.get("stored_size")
        run.raw_bytes = last.get("raw_size")
        location = str(last.get("location") or "")
        stored: int | None = None
        if kind.startswith("local"):
            path = Path(location)
            if path.is_file():
                stored = path.stat().st_size
                for p in path.parent.glob(f"*{run.backup_id}*"):
                    p.unlink()
        else:
            m = re.match(r"^s3://([^/]+)/(.+)$", location)
            if m:
                try:
                    head = self.s3.head_object(Bucket=m.group(1), Key=m.group(2))
                    stored = int(head["ContentLength"])
                except Exception:  # reported below as a missing artifact
                    stored = None
                listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="bench/")
                for obj in listing.get("Contents", []):
                    if run.backup_id and run.backup_id in obj["Key"]:
                        self.s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
        if stored is None or stored != run.artifact_bytes:
            run.ok = False
            run.error = (
                f"artifact at {location!r}: stored {stored} bytes, catalog says "
                f"{run.artifact_bytes}"
            )

    # ---------------------------------------------------------------- orchestration
    def variants(self) -> list[Variant]:
        v = [
            Variant("floor", "floor", "pg_dump -Fc -Z0 > /dev/null", lambda r: self.run_floor(r)),
            Variant("pg_dump_gzip", "pg_dump -Fc", "pg_dump -Fc -f FILE", self.run_pg_dump_gzip),
        ]
        if self.zstd:
            v.append(
                Variant(
                    "zstd_cli",
                    "zstd CLI",
                    f"pg_dump -Fc -Z0 | zstd -T0 -{self.args.level} > FILE",
                    self.run_zstd_cli,
                )
            )
        v.append(
            Variant(
                "bot_local",
                "backupbot local",
                f"backupbot backup now {MAIN_DB} (local store)",
                lambda r: self.run_bot("bot_local", "local", MAIN_DB, r),
                is_bot=True,
            )
        )
        v.append(
            Variant(
                "bot_local_full",
                "backupbot local full",
                f"backupbot backup now {MAIN_DB} (local store; verify: full)",
                lambda r: self.run_bot("bot_local_full", "localfull", MAIN_DB, r),
                is_bot=True,
            )
        )
        if not self.args.no_s3:
            v.append(
                Variant(
                    "bot_s3",
                    "backupbot S3 checksums",
                    f"backupbot backup now {MAIN_DB} (S3 store, moto; verify: checksums)",
                    lambda r: self.run_bot("bot_s3", "s3", MAIN_DB, r),
                    is_bot=True,
                )
            )
            v.append(
                Variant(
                    "bot_s3_full",
                    "backupbot S3 full",
                    f"backupbot backup now {MAIN_DB} (S3 store, moto; verify: full)",
                    lambda r: self.run_bot("bot_s3_full", "s3full", MAIN_DB, r),
                    is_bot=True,
                )
            )
        if self.args.rss_scaling:
            v.append(
                Variant(
                    "bot_local_quarter",
                    "backupbot local 1/4 db",
                    f"backupbot backup now {QUARTER_DB} (local store)",
                    lambda r: self.run_bot("bot_local_quarter", "local", QUARTER_DB, r),
                    is_bot=True,
                    database=QUARTER_DB,
                )
            )
        return v

    def measure(self, variants: list[Variant]) -> list[Run]:
        runs: list[Run] = []
        meter = CpuMeter(self.postmaster_pid())
        log("warm-up (untimed): pg_dump -Fc -Z0 > /dev/null of each database")
        for db in sorted({v.database for v in variants}):
            warm = self.run_floor(-1, db)
            if not warm.ok:
                raise SystemExit(f"warm-up pg_dump failed: {warm.error}")
        for rnd in range(self.args.reps):
            # round-robin, rotated each round so no variant always runs first or last
            order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]
            for variant in order:
                log(f"round {rnd + 1}/{self.args.reps}: {variant.label} ...")
                before = meter.snapshot()
                run = variant.fn(rnd)
                run.cpu = meter.spent(before, meter.snapshot())
                runs.append(run)
                rss = f", peak RSS {run.peak_rss_bytes / MB:.0f} MB" if run.peak_rss_bytes else ""
                size = f", {run.artifact_bytes / MB:.1f} MB" if run.artifact_bytes else ""
                status = "ok" if run.ok else f"FAILED: {run.error}"
                log(f"  {variant.label}: {run.seconds:.2f} s{size}{rss} {status}")
                time.sleep(self.args.pause)
        return runs

    def postmaster_pid(self) -> int | None:
        """The cluster's postmaster, whose reaped children are the backends."""
        assert self.cluster is not None
        try:
            return int((self.cluster.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def shutdown(self) -> None:
        kill_live_children()
        if self.moto is not None:
            with contextlib.suppress(Exception):
                self.moto.stop()
            self.moto = None
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.stop()
            self.cluster = None


# ------------------------------------------------------------------------------ reporting


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(
    variants: list[Variant], runs: list[Run], sizes: dict[str, int]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for v in variants:
        mine = [r for r in runs if r.variant == v.key]
        good = [r for r in mine if r.ok]
        times = [r.seconds for r in good]
        arts = [r.artifact_bytes for r in good if r.artifact_bytes is not None]
        rss = [r.peak_rss_bytes for r in good if r.peak_rss_bytes is not None]
        phases: dict[str, float] = {}
        with_phases = [r.phases for r in good if r.phases]
        if with_phases:
            phases = {k: statistics.median(p[k] for p in with_phases) for k in with_phases[0]}
        out[v.key] = {
            "label": v.label,
            "command": v.command,
            "database": v.database,
            "database_bytes": sizes.get(v.database),
            "runs": len(mine),
            "failed_runs": len(mine) - len(good),
            "errors": [r.error for r in mine if not r.ok],
            "seconds": times,
            "median_seconds": _median(times),
            "artifact_bytes": int(statistics.median(arts)) if arts else None,
            "raw_dump_bytes": next((r.raw_bytes for r in good if r.raw_bytes), None),
            "peak_rss_bytes": max(rss) if rss else None,
            "peak_rss_bytes_each": rss,
            "phases_median_seconds": phases,
            "cpu_median_seconds": {
                k: statistics.median(r.cpu[k] for r in good) for k in (good[0].cpu if good else {})
            },
        }
    floor = out.get("floor", {}).get("median_seconds")
    for entry in out.values():
        med = entry["median_seconds"]
        entry["ratio_to_floor"] = med / floor if med is not None and floor else None
    return out


def evaluate(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    gzip_size = summary.get("pg_dump_gzip", {}).get("artifact_bytes")
    for key in ("bot_local", "bot_local_full", "bot_s3", "bot_s3_full"):
        s = summary.get(key)
        if s is None:
            continue
        label = s["label"]
        failed = s["failed_runs"] > 0 or s["median_seconds"] is None
        ratio = s["ratio_to_floor"]
        target = TARGET_TIME_RATIO if key.startswith("bot_local") else TARGET_S3_TIME_RATIO
        checks.append(
            {
                "variant": key,
                "target": f"wall time <= {target}x floor",
                "value": f"{ratio:.2f}x" if ratio else "n/a",
                "pass": bool(ratio and not failed and ratio <= target),
                "label": label,
            }
        )
        art = s["artifact_bytes"]
        checks.append(
            {
                "variant": key,
                "target": "artifact <= pg_dump -Fc file",
                "value": (
                    f"{art / MB:.1f} MB vs {gzip_size / MB:.1f} MB ({art / gzip_size:.0%})"
                    if art and gzip_size
                    else "n/a"
                ),
                "pass": bool(art and gzip_size and not failed and art <= gzip_size),
                "label": label,
            }
        )
        rss = s["peak_rss_bytes"]
        checks.append(
            {
                "variant": key,
                "target": f"peak RSS <= {TARGET_RSS_BYTES // MB} MB",
                "value": f"{rss / MB:.0f} MB" if rss else "n/a",
                "pass": bool(rss and not failed and rss <= TARGET_RSS_BYTES),
                "label": label,
            }
        )
    full, quarter = summary.get("bot_local"), summary.get("bot_local_quarter")
    if full and quarter:
        a, b = full["peak_rss_bytes"], quarter["peak_rss_bytes"]
        checks.append(
            {
                "variant": "bot_local_quarter",
                "target": (
                    f"peak RSS flat as the db grows (full <= {FLAT_RSS_RATIO}x 1/4-size, "
                    f"or <= +{FLAT_RSS_SLACK // MB} MB)"
                ),
                "value": f"{a / MB:.0f} MB vs {b / MB:.0f} MB ({a / b:.2f}x)" if a and b else "n/a",
                "pass": bool(a and b and (a <= b * FLAT_RSS_RATIO or a - b <= FLAT_RSS_SLACK)),
                "label": "backupbot local",
            }
        )
    return checks


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def write_results(results_dir: Path, stem: str, result: dict[str, Any], markdown: str) -> None:
    """`<stem>.json` and `<stem>.md` in `results_dir`, and the table on stdout."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results_dir / f"{stem}.md").write_text(markdown)
    print()
    print(markdown)
    print(f"written: {results_dir / (stem + '.json')}, {results_dir / (stem + '.md')}")


def render_markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    sizes = result["databases"]
    env = result["machine"]
    lines = [
        f"Backup benchmark, {result['date']}: {env['nproc']} CPUs, "
        f"{env['memory_bytes'] / 2**30:.0f} GiB RAM, PostgreSQL {env['postgres']}, "
        f"{result['reps']} repetitions (median), zstd level {result['compression_level']}.",
        "",
        f"Database `{MAIN_DB}`: {sizes[MAIN_DB] / MB:.0f} MB on disk (pg_database_size)"
        + (
            f", uncompressed dump (pg_dump -Fc -Z0) {result['raw_dump_bytes'] / MB:.0f} MB."
            if result.get("raw_dump_bytes")
            else "."
        )
        + " Tables: "
        + ", ".join(
            f"{t['table']} {t['rows']:,} rows {(t['table_bytes'] + t['index_bytes']) / MB:.0f} MB"
            f" ({t['index_bytes'] / MB:.0f} MB indexes)"
            for t in result["tables"][MAIN_DB]
        )
        + ".",
        "",
        "| Variant | Command | Wall time (median) | x floor | Artifact bytes | Artifact MB "
        "| Peak RSS (backupbot) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for entry in s.values():
        failed = f" ({entry['failed_runs']} failed)" if entry["failed_runs"] else ""
        times = entry["seconds"]
        spread = f" ({min(times):.1f}-{max(times):.1f})" if len(times) > 1 else ""
        art = entry["artifact_bytes"]
        rss = entry["peak_rss_bytes"]
        label = entry["label"]
        if entry["database"] != MAIN_DB and entry["database_bytes"]:
            label += f" ({entry['database_bytes'] / MB:.0f} MB db)"
        lines.append(
            f"| {label}{failed} | `{entry['command'].replace('|', chr(92) + '|')}` "
            f"| {_fmt(entry['median_seconds'], '.2f', ' s')}{spread} "
            f"| {_fmt(entry['ratio_to_floor'], '.2f', 'x')} "
            f"| {art if art is not None else '—'} "
            f"| {_fmt(art / MB if art else None, '.1f')} "
            f"| {_fmt(rss / MB if rss else None, '.0f', ' MB')} |"
        )
    lines += ["", "| Target | Variant | Measured | Result |", "|---|---|---|---|"]
    for c in result["checks"]:
        lines.append(
            f"| {c['target']} | {c['label']} | {c['value']} | {'PASS' if c['pass'] else 'FAIL'} |"
        )
    phased = [
        (e["label"], e["phases_median_seconds"])
        for e in s.values()
        if e.get("phases_median_seconds")
    ]
    if phased:
        lines += [
            "",
            "backupbot phases (median s, from the CLI's progress lines on stderr): "
            "startup = process start to the snapshot stage (interpreter, imports, state "
            "database), snapshot = snapshot export and pg_dump start, dump = pg_dump -> zstd "
            "-> sha256 -> store (with verify: checksums also decompress + pg_restore --list "
            "on the way, and S3's composite checksum), verify = read back + sha256 + "
            "decompress + pg_restore --list (verify: full, local) + manifest, exit = result "
            "line to process exit.",
            "",
            "| Variant | startup | snapshot | dump | verify | exit |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, p in phased:
            lines.append(
                f"| {label} | {p['startup']:.2f} | {p['snapshot']:.2f} | {p['dump']:.2f} "
                f"| {p['verify']:.2f} | {p['exit']:.2f} |"
            )
    lines += _cpu_lines(s, result["machine"]["nproc"])
    return "\n".join(lines) + "\n"


def _cpu_lines(s: dict[str, Any], nproc: int) -> list[str]:
    """Where the CPU went, per variant: what bounds the wall time on `nproc` cores."""
    lines = [
        "",
        f"CPU seconds (median, user + system): client = the command's processes (backupbot, "
        f"pg_dump, zstd), server = the PostgreSQL backend, bench = this process (moto's "
        f"threads for S3). busy = all of them / ({nproc} cores x wall time): near 100 % the "
        "run is CPU-bound, and no pipeline can be faster than total / cores.",
        "",
        "| Variant | client | server | bench | total | total / cores | busy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in s.values():
        cpu, wall = e.get("cpu_median_seconds") or {}, e["median_seconds"]
        if not cpu or not wall:
            continue
        total = sum(cpu.values())
        lines.append(
            f"| {e['label']} | {cpu['client']:.2f} | {cpu['server']:.2f} | {cpu['bench']:.2f} "
            f"| {total:.2f} | {total / nproc:.2f} s | {100 * total / (nproc * wall):.0f} % |"
        )
    return lines


def _tool_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-gb", type=float, default=1.0, help="database size (pg_database_size)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each variant (median)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the database(s)")
    p.add_argument(
        "--rss-scaling",
        action="store_true",
        help="also back up a database 1/4 the size and compare peak RSS",
    )
    p.add_argument("--no-s3", action="store_true", help="skip the S3 (moto) variants")
    p.add_argument("--level", type=int, default=3, help="zstd level (backupbot and zstd CLI)")
    p.add_argument("--pause", type=float, default=1.0, help="seconds of rest between runs")
    p.add_argument("--work-dir", default=str(REPO / "bench" / ".work"))
    p.add_argument("--results-dir", default=str(REPO / "bench" / "results"))
    args = p.parse_args(argv)
    if args.size_gb <= 0 or args.reps < 1:
        p.error("--size-gb must be > 0 and --reps >= 1")
    return args


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    bench = Bench(args)
    for d in (bench.work, bench.out, bench.logs):
        d.mkdir(parents=True, exist_ok=True)
    target = int(args.size_gb * 10**9)
    started = datetime.now(UTC)
    try:
        cluster = bench.start_cluster()
        sizes = {MAIN_DB: ensure_database(cluster, MAIN_DB, target, args.rebuild)}
        if args.rss_scaling:
            sizes[QUARTER_DB] = ensure_database(cluster, QUARTER_DB, target // 4, args.rebuild)
        if not args.no_s3:
            bench.start_moto()
        bench.write_configs()
        bench.prepare_bot()
        variants = bench.variants()
        runs = bench.measure(variants)
        summary = summarize(variants, runs, sizes)
        checks = evaluate(summary)
        assert bench.pg_bin is not None
        import zstandard

        result = {
            "date": started.isoformat(timespec="seconds"),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "reps": args.reps,
            "size_gb_requested": args.size_gb,
            "compression_level": args.level,
            "databases": sizes,
            "tables": {db: table_stats(cluster, db) for db in sizes},
            "raw_dump_bytes": summary.get("bot_local", {}).get("raw_dump_bytes"),
            "machine": {
                "nproc": os.cpu_count(),
                "memory_bytes": psutil.virtual_memory().total,
                "platform": platform.platform(),
                "python": platform.python_version(),
                "postgres": server_version(cluster),
                "pg_dump": _tool_version([str(bench.pg_bin / "pg_dump"), "--version"]),
                "zstd_cli": _tool_version([bench.zstd, "--version"]) if bench.zstd else None,
                "python_zstandard": zstandard.__version__,
                "backupbot_command": " ".join(bench.bot_cmd),
            },
            "targets": {
                "time_ratio_max": TARGET_TIME_RATIO,
                "s3_time_ratio_max": TARGET_S3_TIME_RATIO,
                "peak_rss_bytes_max": TARGET_RSS_BYTES,
                "artifact": "<= pg_dump -Fc",
            },
            "summary": summary,
            "checks": checks,
            "runs": [asdict(r) for r in runs],
        }
        markdown = render_markdown(result)
        write_results(Path(args.results_dir), "latest", result, markdown)
        all_ok = all(c["pass"] for c in checks) and not any(not r.ok for r in runs)
        return 0 if all_ok else 1
    except KeyboardInterrupt:
        log("interrupted; stopping children, moto and the cluster")
        return 130
    finally:
        bench.shutdown()


if __name__ == "__main__":
    sys.exit(main())
