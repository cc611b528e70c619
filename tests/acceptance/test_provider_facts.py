"""Provider facts in `/backup status`, the checklist's item 1 and alerts (issue 13 item 3),
through the real `backupbot serve` and CLI, with the Neon and Supabase stand-ins reached
over HTTP: `app` is a Neon branch keeping 7 days of history (shorter than the runbook's
30: a warning), `shop` a Supabase project with point-in-time recovery off (a warning and,
as its section asks, an alert). The provider APIs are asked once per five minutes, and no
API key reaches Slack, the CLI or the incident log."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from backupbot.devkit.providers.databases import ClusterDatabases
from backupbot.devkit.providers.neon import NeonStandIn
from backupbot.devkit.providers.supabase import SupabaseStandIn
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REVIEWER, WAIT, Deployment

NEON_KEY = "napi_" + secrets.token_hex(16)
SUPABASE_KEY = "sbp_" + secrets.token_hex(16)
EVERY_FEW_SECONDS = "*/4 * * * * *"
FIRST_HOUSEKEEPING = 90.0  # the leader's alert step runs once a minute


@pytest.fixture(scope="module")
def providers(pg: Any) -> Iterator[tuple[NeonStandIn, SupabaseStandIn, dict[str, str]]]:
    app_url, _ = source_database(pg, "pfapp")
    shop_url, _ = source_database(pg, "pfshop")
    now = datetime.now(UTC)
    neon = NeonStandIn(
        NEON_KEY,
        ClusterDatabases(pg.url("postgres"), {now: app_url.rsplit("/", 1)[1]}),
        database=app_url.rsplit("/", 1)[1],
    ).start()
    supabase = SupabaseStandIn(
        SUPABASE_KEY,
        ClusterDatabases(pg.url("postgres"), {now: shop_url.rsplit("/", 1)[1]}),
        database=shop_url.rsplit("/", 1)[1],
        pitr_enabled=False,
    ).start()
    yield neon, supabase, {"app": app_url, "shop": shop_url}
    neon.close()
    supabase.close()


@pytest.fixture(scope="module")
def dep(
    providers: tuple[NeonStandIn, SupabaseStandIn, dict[str, str]],
    pg: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    neon, supabase, urls = providers
    with SlackStandin() as standin:
        d = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path_factory.mktemp("provider-facts"),
            databases=urls,
            extra={"schedules": {"checklist": EVERY_FEW_SECONDS}},
        )
        app, shop = d.config["databases"]
        app |= {
            "provider": "neon",
            "neon": {
                "api_url": neon.url,
                "project_id": neon.project_id,
                "branch_id": next(iter(neon.branches)),
                "api_key": "${NEON_API_KEY}",
            },
        }
        shop |= {
            "provider": "supabase",
            "supabase": {
                "api_url": supabase.url,
                "project_ref": supabase.project_ref,
                "api_key": "${SUPABASE_ACCESS_TOKEN}",
                "alert_on_recovery_gap": True,
            },
        }
        d.exported |= {"NEON_API_KEY": NEON_KEY, "SUPABASE_ACCESS_TOKEN": SUPABASE_KEY}
        d.start()
        yield d
        d.close()


def _status(dep: Deployment, args: str) -> str:
    before = len(dep.standin.response_posts())
    assert dep.slash(REVIEWER, f"status {args}").status == 200
    post = dep.wait_response(lambda p: dep.standin.response_posts().index(p) >= before)
    return json.dumps(post.body, ensure_ascii=False)


def _no_keys(text: str) -> None:
    assert NEON_KEY not in text and SUPABASE_KEY not in text


def test_status_shows_each_providers_recovery_and_warns_about_the_gaps(
    dep: Deployment, providers: tuple[NeonStandIn, SupabaseStandIn, dict[str, str]]
) -> None:
    neon, _, _ = providers
    app = _status(dep, "app")
    assert "Neon point-in-time recovery: on, 7 days kept (runbook 30), back to " in app, app
    assert "Neon keeps 7 days of history; the runbook asks for 30 days." in app, app
    shop = _status(dep, "shop")
    assert "Supabase point-in-time recovery: off" in shop, shop
    assert "point-in-time recovery is not enabled for this project" in shop, shop
    assert "Only the bot's own dumps can restore this database." in shop
    _no_keys(app + shop)

    cli = dep.cli_json("status", "app")[0]["provider_recovery"]  # its own process asks
    assert cli["pitr"] is True and cli["retention_days"] == pytest.approx(7)
    assert cli["warnings"] == [
        "Neon keeps 7 days of history; the runbook asks for 30 days. Raise it in Neon's "
        "settings, or count on the bot's dumps beyond that."
    ]
    asked = len([r for r in neon.requests if r.path.endswith(neon.project_id)])
    again = _status(dep, "app")  # within five minutes: from serve's cache, not the API
    assert "Neon keeps 7 days of history" in again
    assert len([r for r in neon.requests if r.path.endswith(neon.project_id)]) == asked


def test_the_checklist_item_1_shows_the_providers_and_needs_a_look(dep: Deployment) -> None:
    checklist = dep.wait_message(lambda m: m.text.startswith("Backup verification checklist"))
    shown = json.dumps(checklist.blocks, ensure_ascii=False)
    assert "Neon point-in-time recovery: on, 7 days kept (runbook 30)" in shown, shown
    assert "Supabase point-in-time recovery: off" in shown, shown
    posted = dep.wait_action("checklist.posted")
    item = posted.details["items"]["backups"]
    assert item["ok"] is False
    assert "provider recovery needs a look: app, shop" in item["summary"]
    _no_keys(shown + json.dumps(posted.details))


def test_an_alert_opens_for_the_database_whose_section_asks_for_it(dep: Deployment) -> None:
    alert = dep.wait_message(
        lambda m: m.text.startswith("Alert (shop), open"), timeout=WAIT + FIRST_HOUSEKEEPING
    )
    text = json.dumps(alert.blocks, ensure_ascii=False)
    assert "Provider recovery not as the runbook asks" in text, text
    assert "Supabase point-in-time recovery is off" in text
    opened = dep.wait_incident(lambda i: i.action == "alert.opened" and i.database == "shop")
    assert opened.details["condition"] == "provider_recovery"
    assert not [m for m in dep.standin.messages("C0BACKUPS") if m.text.startswith("Alert (app)")]
    _no_keys(text + json.dumps(opened.details))
