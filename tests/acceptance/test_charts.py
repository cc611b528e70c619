"""Size and duration trends through the real `backupbot serve` (issue 14 item 3): the
sparkline in `/backup status`, the PNG chart `/backup status app --chart` uploads with
Slack's current flow (files.getUploadURLExternal, the upload URL, completeUploadExternal),
the chart in the monthly checklist's thread, and a failed upload that leaves the status
answer and the checklist standing.

Backups are real; time is moved by backdating their rows in the state database so they
spread over days (one falls outside the chart's 90 days)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import create_engine, select, text, update

from backupbot.bot.sparkline import BARS
from backupbot.devkit.slack_standin import SlackStandin
from backupbot.devkit.slack_standin.files import UploadedFile
from backupbot.storage.models import BackupRow
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import CHANNEL, REQUESTER, WAIT, Deployment
from tests.acceptance.test_flows import _backup_id, backup_now

DAYS_AGO = [120, 30, 10, 2, 0]  # the first one is outside the chart's 90 days


@pytest.fixture
def charted(pg: Any, tmp_path: Path) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "sqlite"), pg, standin, tmp_path / "deploy", databases={"app": url}
        )
        dep.start()
        yield dep
        dep.close()


def _backdate(dep: Deployment, backup_id: str, by: timedelta) -> None:
    engine = create_engine(dep.state_url)
    with engine.begin() as conn:
        row = conn.execute(select(BackupRow).where(BackupRow.id == backup_id)).one()
        conn.execute(
            update(BackupRow)
            .where(BackupRow.id == backup_id)
            .values(
                started_at=row.started_at - by,
                finished_at=row.finished_at - by,
                heartbeat_at=row.heartbeat_at - by,
            )
        )
    engine.dispose()


def _backups(dep: Deployment) -> None:
    for days in DAYS_AGO:  # oldest first, each backdated after it finished
        done = backup_now(dep)
        assert "succeeded" in done.text
        if days:
            _backdate(dep, _backup_id(done.text), timedelta(days=days))


def _status(dep: Deployment, text: str) -> str:
    before = len(dep.standin.response_posts())
    assert dep.slash(REQUESTER, text).status == 200
    post = dep.wait_response(lambda p: dep.standin.response_posts().index(p) >= before)
    return json.dumps(post.body, ensure_ascii=False)  # the sparkline's bars as they are


def _uploaded(dep: Deployment, count: int) -> list[UploadedFile]:
    assert dep.standin.wait_for(lambda: len(dep.standin.uploaded_files(CHANNEL)) >= count, WAIT)
    return dep.standin.uploaded_files(CHANNEL)


def _png(f: UploadedFile) -> Image.Image:
    assert f.data is not None and f.data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(f.data))
    image.load()
    return image


def test_status_shows_the_sparkline_and_chart_uploads_a_png_of_the_window(
    charted: Deployment,
) -> None:
    dep = charted
    _backups(dep)

    answer = _status(dep, "status app")
    assert "Size and duration trend" in answer and "(5 backups)" in answer
    assert sum(answer.count(bar) for bar in BARS) >= 2 * len(DAYS_AGO)
    cli = dep.cli("status", "app", check=False).stdout
    assert "size trend:" in cli and "(5 backups)" in cli

    answer = _status(dep, "status app --chart")
    assert "Trend chart of `app` posted in <#C0BACKUPS>" in answer, answer
    [chart] = _uploaded(dep, 1)
    image = _png(chart)
    assert image.format == "PNG" and image.size == (800, 750)
    assert image.text["backupbot:backups"] == "4"  # the 120-day-old one is outside
    assert image.text["backupbot:drills"] == "0"
    assert chart.initial_comment and "4 stored backup(s)" in chart.initial_comment
    assert [c for c, _ in dep.standin.calls() if c.startswith(("files.", "upload"))] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]

    out = dep.workdir / "trend.png"
    dep.cli("status", "app", "--chart", str(out), check=False)
    assert Image.open(out).text["backupbot:backups"] == "4"

    dep.standin.server_error("files.completeUploadExternal", times=None)
    answer = _status(dep, "status app --chart")
    assert "could not be posted (internal_error)" in answer, answer
    assert "Last good backup" in answer  # the status stands
    assert len(dep.standin.uploaded_files(CHANNEL)) == 1


@pytest.fixture
def checklisted(pg: Any, tmp_path: Path) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path / "deploy",
            databases={"app": url},
            extra={"schedules": {"checklist": "*/4 * * * * *"}},
        )
        yield dep
        dep.close()


def test_the_monthly_checklist_has_the_chart_in_its_thread(checklisted: Deployment) -> None:
    dep = checklisted
    dep.standin.server_error("files.completeUploadExternal", times=None)  # first: it fails
    dep.start()
    _backups(dep)
    checklist = dep.wait_message(lambda m: m.text.startswith("Backup verification checklist"))
    failed = dep.wait_action("checklist.chart_failed", "app")
    assert failed.details["error"] == "internal_error"
    assert dep.standin.message(CHANNEL, checklist.ts).text == checklist.text  # it stands

    dep.standin.clear_faults()
    engine = create_engine(dep.state_url)
    with engine.begin() as conn:  # next month: a new period's checklist is posted
        conn.execute(text("DELETE FROM checklists"))
    engine.dispose()
    checklist = dep.wait_message(
        lambda m: m.text.startswith("Backup verification checklist") and m.ts != checklist.ts
    )
    [chart] = _uploaded(dep, 1)
    assert chart.thread_ts == checklist.ts
    assert chart.initial_comment and "stored backup(s)" in chart.initial_comment
    assert _png(chart).text["backupbot:database"] == "app"
