"""What the provider stand-ins share: the real databases a restore creates on the test
cluster (a copy of a prepared snapshot database, `CREATE DATABASE … TEMPLATE`), the
asynchronous operations that take a few polls, and request validation against the
providers' OpenAPI specs (jsonschema is a test dependency: imported when used)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

# tests/data/provider-apis/ of this repository (the specs' copies, with their sources)
SPECS = Path(__file__).resolve().parents[3] / "tests" / "data" / "provider-apis"


class ClusterDatabases:
    """Creates and replaces databases on the test cluster through an admin conninfo.

    `snapshots` maps a moment to the database holding the data as of that moment; a
    restore to time T copies the newest snapshot at or before T."""

    def __init__(
        self, admin_url: str, snapshots: Mapping[datetime, str], prefix: str = "restored"
    ) -> None:
        self.admin_url = admin_url
        self.prefix = prefix  # of every database a restore creates (one per test run)
        self.snapshots = dict(snapshots)
        parts = urlsplit(admin_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432

    def url(self, dbname: str) -> str:
        """The admin conninfo with another database name (what a restored result's
        connection string looks like in the stand-ins)."""
        parts = urlsplit(self.admin_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, ""))

    def new_name(self, suffix: str) -> str:
        return f"{self.prefix}_{suffix}".replace("-", "_")[:63]

    def template_at(self, at: datetime) -> str:
        older = [moment for moment in self.snapshots if moment <= at]
        if not older:
            raise ValueError(f"no snapshot at or before {at.isoformat()}")
        return self.snapshots[max(older)]

    def copy(self, template: str, new: str) -> None:
        self._run(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(new), sql.Identifier(template)
            )
        )

    def replace(self, target: str, template: str, keep_as: str | None = None) -> None:
        """Overwrite `target` with a copy of `template`; the old one is renamed to
        `keep_as` (Neon's preserved branch) or dropped."""
        self._terminate(target)
        if keep_as is None:
            self._run(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target))
            )
        else:
            self._run(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(target), sql.Identifier(keep_as)
                )
            )
        self.copy(template, target)

    def _terminate(self, dbname: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )

    def _run(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)


@dataclass
class PendingOperation:
    """An asynchronous provider operation: `running` for `polls` polls, then it does
    its work (creating the databases) and is `finished`, or `failed` when told to fail
    or when the work raised."""

    polls: int
    work: Callable[[], None]
    fail: bool = False
    state: str = "running"
    error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def poll(self) -> str:
        with self._lock:
            if self.state != "running":
                return self.state
            self.polls -= 1
            if self.polls > 0:
                return self.state
            if self.fail:
                self.state, self.error = "failed", "the restore failed (injected)"
                return self.state
            try:
                self.work()
            except Exception as exc:  # the stand-in reports it as the provider would
                self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            else:
                self.state = "finished"
            return self.state


class OpenApiBodies:
    """Validates JSON request bodies against an operation's requestBody schema in an
    OpenAPI document; `problem(...)` is None when the body is valid."""

    def __init__(self, spec_path: Path) -> None:
        self.spec: dict[str, Any] = json.loads(spec_path.read_text(encoding="utf-8"))
        self._registry: Any = None

    def problem(self, path: str, method: str, body: Any) -> str | None:
        from jsonschema import Draft4Validator  # type: ignore[import-untyped]
        from referencing import Registry
        from referencing.jsonschema import DRAFT4

        operation = self.spec["paths"][path][method.lower()]
        request_body = operation.get("requestBody")
        if request_body is None:
            return None if body is None else f"{operation['operationId']} takes no body"
        if body is None:
            return "a JSON body is required" if request_body.get("required") else None
        if self._registry is None:
            self._registry = Registry().with_resource("urn:spec", DRAFT4.create_resource(self.spec))
        pointer = "/".join(
            part.replace("~", "~0").replace("/", "~1")
            for part in (
                "paths",
                path,
                method.lower(),
                "requestBody",
                "content",
                "application/json",
                "schema",
            )
        )
        validator = Draft4Validator(
            {"$ref": f"urn:spec#/{quote(pointer)}"}, registry=self._registry
        )
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        if not errors:
            return None
        where = "/".join(str(p) for p in errors[0].path) or "body"
        return (
            f"request body does not match {operation['operationId']}: {where}: {errors[0].message}"
        )
