"""manifest.yml is a valid Slack app manifest and agrees with the code's Slack contract.

The JSON Schema is test data in `tests/data/slack-manifest-schema/` (a verbatim copy of
slackapi/manifest-schema; SOURCE.md there says which commit). Its top-level file refers to
the versioned schemas by their public URLs; those are served from the local copies, never
fetched.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7

from backupbot.bot.slack import contract as slack_contract

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_PATH = REPO_ROOT / "manifest.yml"
SCHEMA_DIR = Path(__file__).resolve().parent / "data" / "slack-manifest-schema"
TOP_SCHEMA = "manifest.schema.json"


def _iter_refs(node: Any):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _iter_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _iter_refs(value)


def _no_network(uri: str):
    # Anything not registered below is an error, not a download.
    raise NoSuchResource(ref=uri)


@pytest.fixture(scope="module")
def schema_dir() -> Path:
    return SCHEMA_DIR


@pytest.fixture(scope="module")
def validator(schema_dir: Path) -> Draft7Validator:
    top = json.loads((schema_dir / TOP_SCHEMA).read_text(encoding="utf-8"))
    resources: list[tuple[str, Resource]] = []
    remote_refs = sorted({r.split("#", 1)[0] for r in _iter_refs(top) if "://" in r})
    assert remote_refs, "expected the top-level schema to reference the versioned schemas"
    for url in remote_refs:
        local = schema_dir / Path(urlsplit(url).path).name
        assert local.is_file(), f"{url} is referenced but {local} is missing"
        contents = json.loads(local.read_text(encoding="utf-8"))
        resources.append((url, Resource.from_contents(contents, default_specification=DRAFT7)))
    if "$id" in top:
        resources.append((top["$id"], Resource.from_contents(top, default_specification=DRAFT7)))
    registry = Registry(retrieve=_no_network).with_resources(resources)
    Draft7Validator.check_schema(top)
    return Draft7Validator(top, registry=registry)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "manifest.yml must be a YAML mapping"
    return data


def _errors(validator: Draft7Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def test_validator_accepts_upstream_example(validator: Draft7Validator, schema_dir: Path) -> None:
    example = json.loads((schema_dir / "manifest.valid.json").read_text(encoding="utf-8"))
    assert _errors(validator, example) == []


@pytest.mark.parametrize(
    "breakage",
    ["no_display_information", "command_without_slash", "unknown_setting", "bad_request_url"],
)
def test_validator_rejects_broken_manifest(
    validator: Draft7Validator, manifest: dict[str, Any], breakage: str
) -> None:
    broken = copy.deepcopy(manifest)
    if breakage == "no_display_information":
        del broken["display_information"]
    elif breakage == "command_without_slash":
        broken["features"]["slash_commands"][0]["command"] = "backup"
    elif breakage == "unknown_setting":
        broken["settings"]["socket_mode"] = True
    elif breakage == "bad_request_url":
        broken["settings"]["interactivity"]["request_url"] = "backupbot.example.com/slack/events"
    # These checks live in the versioned schema, so rejecting them also proves the
    # $ref to it was resolved locally.
    with pytest.raises(ValidationError):
        validator.validate(broken)


def test_manifest_is_valid(validator: Draft7Validator, manifest: dict[str, Any]) -> None:
    errors = _errors(validator, manifest)
    assert errors == [], "manifest.yml does not match Slack's schema:\n" + "\n".join(errors)


def _backup_command(manifest: dict[str, Any]) -> dict[str, Any]:
    commands = manifest["features"]["slash_commands"]
    matching = [c for c in commands if c["command"] == slack_contract.SLASH_COMMAND]
    assert len(matching) == 1, (
        f"expected exactly one {slack_contract.SLASH_COMMAND} slash command, "
        f"got {[c['command'] for c in commands]}"
    )
    return matching[0]


def test_slash_command_matches_code(manifest: dict[str, Any]) -> None:
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == [slack_contract.SLASH_COMMAND]
    command = _backup_command(manifest)
    assert urlsplit(command["url"]).path == slack_contract.EVENTS_PATH
    assert command.get("should_escape") is False


def test_interactivity_matches_code(manifest: dict[str, Any]) -> None:
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is slack_contract.USES_INTERACTIVITY
    if slack_contract.USES_INTERACTIVITY:
        assert urlsplit(interactivity["request_url"]).path == slack_contract.EVENTS_PATH


def test_bot_scopes_match_code(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes)), f"duplicate bot scopes: {scopes}"
    assert set(scopes) == set(slack_contract.BOT_SCOPES)


def test_bot_events_match_code(manifest: dict[str, Any]) -> None:
    events = manifest["settings"]["event_subscriptions"]
    assert events["bot_events"] == list(slack_contract.BOT_EVENTS)
    assert urlsplit(events["request_url"]).path == slack_contract.EVENTS_PATH
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True


def test_urls_share_one_host(manifest: dict[str, Any]) -> None:
    # All urls point at the same `backupbot serve` process; a half-edited host is a bug.
    hosts = {
        urlsplit(_backup_command(manifest)["url"]).netloc,
        urlsplit(manifest["settings"]["interactivity"]["request_url"]).netloc,
        urlsplit(manifest["settings"]["event_subscriptions"]["request_url"]).netloc,
    }
    assert len(hosts) == 1, f"slash command and interactivity urls use different hosts: {hosts}"


def test_socket_mode_is_the_default_set_up(manifest: dict[str, Any]) -> None:
    assert manifest["settings"]["socket_mode_enabled"] is True
