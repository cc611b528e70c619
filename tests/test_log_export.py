"""`backupbot log --since/--until --format jsonl|csv [--output FILE]`, the audit export, as
an auditor runs it: the installed console script against a config file and a state
database whose records were written by real CLI actions (a real backup of a real
PostgreSQL database, refusals)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupbot.bot.cli import log_export
from backupbot.bot.cli.render.log import EXPORT_FIELDS
from backupbot.commands.parse import parse_command
from backupbot.errors import UsageError
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.state import create_state_engine, migrate

BACKUPBOT = Path(sys.executable).with_name("backupbot")


class Cli:
    """The installed `backupbot` run with one config file (as the README's)."""

    def __init__(self, root: Path, sample_url: str) -> None:
        self.root = root
        self.state = root / "state.db"
        self.config = root / "backupbot.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "state_url": f"sqlite:///{self.state}",
                    "storage": {"local": {"path": str(root / "backups")}},
                    "databases": [{"name": "app", "url": "${APP_DATABASE_URL}"}],
                }
            )
        )
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SLACK_") and k not in ("BACKUPBOT_CONFIG", "APP_DATABASE_URL")
        }
        self.env = {**keep, "APP_DATABASE_URL": sample_url}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        if not BACKUPBOT.exists():
            pytest.fail(f"{BACKUPBOT} is missing: pip install -e '.[test]'", pytrace=False)
        return subprocess.run(
            [str(BACKUPBOT), "--config", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def copy(self, name: str) -> Cli:
        """Another config over a copy of this state database (to tamper with)."""
        (self.root / name).mkdir(parents=True)
        other = Cli(self.root / name, self.env["APP_DATABASE_URL"])
        shutil.copyfile(self.state, other.state)
        return other

    def rows(self, where: str = "1 = 1") -> list[dict[str, Any]]:
        """The stored records, read with sqlite3 beside the bot."""
        with sqlite3.connect(self.state) as db:
            db.row_factory = sqlite3.Row
            found = db.execute(f"SELECT * FROM incidents WHERE {where} ORDER BY id")
            return [dict(row) for row in found]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, sample_db: dict[str, Any]) -> Cli:
    root = tmp_path_factory.mktemp("audit")
    made = Cli(root, sample_db["url"])
    backup = made("backup", "now", "app", "--label", "audit")
    assert backup.returncode == 0, backup.stderr
    refused = made("restore", "run", "app", "--into", "app_audit", "--reason", "x")
    assert refused.returncode == 2, refused.stderr
    made("status", "app")
    return made


def _jsonl(out: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines()]
    *records, last = lines
    return records, last["verification"]


def _at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["at"])


def test_jsonl_is_every_record_oldest_first_as_stored_with_the_chain_check(cli: Cli) -> None:
    stored = cli.rows()

    done = cli("log", "--format", "jsonl")

    assert done.returncode == 0, done.stderr
    records, verification = _jsonl(done.stdout)
    assert [r["id"] for r in records] == [row["id"] for row in stored]
    assert {"backup.succeeded", "command.rejected"} <= {r["action"] for r in records}
    for record, row in zip(records, stored, strict=True):
        assert list(record) == list(EXPORT_FIELDS)
        assert record["at"].endswith("+00:00") and _at(record).tzinfo is not None
        assert _at(record).replace(tzinfo=None) == datetime.fromisoformat(row["at"])
        assert (record["actor"], record["action"], record["outcome"]) == (
            row["actor"],
            row["action"],
            row["outcome"],
        )
        assert (record["database"], record["backup_id"]) == (row["database"], row["backup_id"])
        assert record["details"] == json.loads(row["details"])
        assert (record["prev_hash"], record["hash"]) == (row["prev_hash"], row["hash"])
    assert verification["ok"] is True and verification["first_broken"] is None
    assert verification["records"] == len(stored) and verification["exported"] == len(stored)
    assert "hash chain intact" in done.stderr

    [exported] = [r for r in cli.rows() if r["id"] > stored[-1]["id"]]
    details = json.loads(exported["details"])
    assert exported["action"] == "log.exported" and exported["actor"].startswith("cli:")
    assert details["format"] == "jsonl" and details["count"] == len(stored)
    assert details["since"] is None and details["output"] == "stdout"
    assert "backup.succeeded" not in exported["details"]  # never the contents


def test_since_is_inclusive_until_exclusive_and_a_date_means_midnight_utc(cli: Cli) -> None:
    everything, _ = _jsonl(cli("log", "--format", "jsonl").stdout)
    assert len(everything) >= 4
    second, last = everything[1], everything[-1]

    ranged = cli("log", "--since", second["at"], "--until", last["at"], "--format", "jsonl")

    assert ranged.returncode == 0, ranged.stderr
    records, verification = _jsonl(ranged.stdout)
    assert [r["id"] for r in records] == [r["id"] for r in everything[1:-1]]
    assert verification["ok"] is True and verification["exported"] == len(records)

    day = _at(everything[0]).date().isoformat()
    from_midnight, _ = _jsonl(
        cli("log", "--since", day, "--until", last["at"], "--format", "jsonl").stdout
    )
    assert [r["id"] for r in from_midnight] == [r["id"] for r in everything[:-1]]
    before_midnight, verification = _jsonl(cli("log", "--until", day, "--format", "jsonl").stdout)
    assert before_midnight == [] and verification["exported"] == 0

    # a date-time with an offset means that instant; without a format, the text lines
    local = _at(second).astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    text = cli("log", "--since", local, "--until", last["at"])
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == len(everything) - 2
    for line, record in zip(lines, everything[1:-1], strict=True):
        assert f" {record['action']}" in line
    as_json = cli("log", "--since", second["at"], "--until", last["at"], "--json")
    assert [r["id"] for r in json.loads(as_json.stdout)] == [r["id"] for r in everything[1:-1]]


def test_the_range_is_read_in_pages_by_id_with_inclusive_and_exclusive_edges(
    tmp_path: Path,
) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    log = IncidentLog(engine)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    for k in range(7):
        log.record(at=t0 + timedelta(hours=k), actor="U0ALICE", action=f"a{k}", outcome="ok")
    try:
        found = list(log.in_range(t0 + timedelta(hours=1), t0 + timedelta(hours=5), batch=2))
        everything = list(log.in_range(batch=3))
    finally:
        engine.dispose()

    assert [c.incident.action for c in found] == ["a1", "a2", "a3", "a4"]
    assert [c.incident.id for c in everything] == list(range(1, 8))
    assert all(c.hash and c.prev_hash for c in everything)


def test_csv_round_trips_through_dictreader_into_a_file(cli: Cli) -> None:
    jsonl, _ = _jsonl(cli("log", "--format", "jsonl").stdout)
    target = cli.root / "audit.csv"

    done = cli("log", "--format", "csv", "--output", str(target), "--until", _at_after(jsonl))

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert f"as csv to {target}" in done.stderr and "hash chain intact" in done.stderr
    with target.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == EXPORT_FIELDS
    assert [int(row["id"]) for row in rows] == [r["id"] for r in jsonl]
    for row, record in zip(rows, jsonl, strict=True):
        assert json.loads(row["details"]) == record["details"]
        assert row["at"] == record["at"] and row["hash"] == record["hash"]
        assert row["database"] == (record["database"] or "")
    assert [p.name for p in cli.root.iterdir() if p.name.startswith(".audit.csv")] == []


def _at_after(records: list[dict[str, Any]]) -> str:
    """An --until just after the last of `records` (so later ones stay out)."""
    return (_at(records[-1]) + timedelta(microseconds=1)).isoformat()


def test_values_a_spreadsheet_would_run_as_formulas_are_prefixed(cli: Cli) -> None:
    other = cli.copy("copy/formulas")
    engine = create_state_engine(f"sqlite:///{other.state}")
    try:
        for actor in ("=HYPERLINK(1)", "+1", "-2", "@SUM(A1)"):
            IncidentLog(engine).record(
                at=datetime.now(UTC), actor=actor, action="audit.test", outcome="ok"
            )
    finally:
        engine.dispose()

    done = other("log", "--format", "csv")

    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(done.stdout.splitlines()))
    actors = [row["actor"] for row in rows if row["action"] == "audit.test"]
    assert actors == ["'=HYPERLINK(1)", "'+1", "'-2", "'@SUM(A1)"]
    assert all(row["actor"].startswith("cli:") for row in rows if row["action"] != "audit.test")


def test_a_tampered_record_fails_the_export_and_is_named(cli: Cli) -> None:
    other = cli.copy("copy/tampered")
    [succeeded] = other.rows("action = 'backup.succeeded'")
    with sqlite3.connect(other.state) as db:  # an intruder lifts the triggers
        db.execute("DROP TRIGGER incidents_no_update")
        db.execute("UPDATE incidents SET outcome = 'failed' WHERE id = ?", (succeeded["id"],))

    jsonl = other("log", "--format", "jsonl")
    csv_done = other("log", "--format", "csv")

    assert jsonl.returncode == 1, jsonl.stderr
    records, verification = _jsonl(jsonl.stdout)
    assert verification["ok"] is False and verification["first_broken"] == succeeded["id"]
    assert verification["records"] == succeeded["id"] - 1 and "edited" in verification["problem"]
    assert [r["outcome"] for r in records if r["id"] == succeeded["id"]] == ["failed"]
    assert csv_done.returncode == 1
    assert f"hash chain BROKEN at record {succeeded['id']}" in csv_done.stderr
    assert len(list(csv.DictReader(csv_done.stdout.splitlines()))) >= len(records)
    assert other("log", "verify").returncode == 1


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--since", "2026-13-01"], "--since '2026-13-01' is not an ISO date"),
        (["--until", "yesterday"], "--until 'yesterday' is not an ISO date"),
        (["--since", "2026-11-02", "--until", "2026-11-01"], "--until must be later"),
        (["--format", "xlsx"], "--format must be jsonl or csv"),
        (["--output", "{missing}/audit.jsonl"], "Cannot write --output"),
        (["--output", "{dir}"], "is a directory"),
    ],
)
def test_bad_usage_is_one_error_recorded_and_leaves_the_output_as_it_was(
    cli: Cli, args: list[str], problem: str
) -> None:
    folder = cli.root / "out"
    folder.mkdir(exist_ok=True)
    target = folder / "audit.jsonl"
    target.write_text("the previous export\n")
    given = [
        a.format(missing=folder / "nope", dir=folder) if a.startswith("{") else a for a in args
    ]
    if "--output" not in given:
        given += ["--output", str(target)]
    if "--format" not in given:
        given += ["--format", "jsonl"]
    before = cli.rows()[-1]["id"]

    done = cli("log", *given)

    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and problem in line
    assert target.read_text() == "the previous export\n"
    assert sorted(p.name for p in folder.iterdir()) == ["audit.jsonl"]
    [rejected] = cli.rows(f"id > {before}")
    assert rejected["action"] == "command.rejected" and rejected["outcome"] == "refused"
    assert json.loads(rejected["details"])["command"].startswith("log ")


def test_an_export_that_fails_midway_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    target.write_text("the previous export\n")

    with pytest.raises(RuntimeError), log_export._opened(target) as out:
        out.write('{"id": 1}\n')
        raise RuntimeError("the state database went away")

    assert target.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["audit.jsonl"]


def test_slack_does_not_offer_the_export_options() -> None:
    for words in ("log --since 2026-11-01", "log --format csv", "log --output x"):
        with pytest.raises(UsageError):
            parse_command(words, ["app"])
