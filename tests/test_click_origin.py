"""Whether a click came from the message stored for what it names (`click_origin`)."""

from __future__ import annotations

from dataclasses import dataclass

from backupbot.commands.click_origin import ClickOrigin, mismatch, once_posted
from backupbot.phrases import say

ORIGIN = ClickOrigin("C0BACKUPS", "1700000000.000100")
WHAT = say("restore request r1")


@dataclass(frozen=True)
class Record:
    channel: str | None
    message_ts: str | None


def test_only_the_stored_channel_and_ts_count() -> None:
    assert mismatch(ORIGIN, "C0BACKUPS", "1700000000.000100", WHAT) is None
    assert mismatch(None, None, None, WHAT) is None  # the bot's own calls: no message
    for channel, ts in (("C0OTHER", ORIGIN.message_ts), ("C0BACKUPS", "1700000000.000200")):
        refusal = mismatch(ORIGIN, channel, ts, WHAT)
        assert refusal is not None and "not on the message the bot posted" in str(refusal)
    early = mismatch(ORIGIN, "C0BACKUPS", None, WHAT)
    assert early is not None and "not in place yet" in str(early)


def test_a_click_waits_for_its_message_to_be_stored_and_gives_up_after_the_timeout() -> None:
    reads = iter([Record("C0BACKUPS", None), Record("C0BACKUPS", None), Record("C0BACKUPS", "1")])
    assert once_posted(lambda: next(reads), ORIGIN) == Record("C0BACKUPS", "1")

    never = Record("C0BACKUPS", None)
    assert once_posted(lambda: never, ORIGIN, timeout=0.2) == never
    calls: list[Record] = []

    def read_once() -> Record:
        calls.append(never)
        return never

    assert once_posted(read_once, None) == never  # not a click from Slack: no waiting
    assert calls == [never]


def test_the_origin_is_read_from_the_payload_s_container_then_its_message() -> None:
    container = {"container": {"channel_id": "C1", "message_ts": "2.0"}, "channel": {"id": "C9"}}
    assert ClickOrigin.of(container) == ClickOrigin("C1", "2.0")
    assert ClickOrigin.of({"channel": {"id": "C2"}, "message": {"ts": "3.0"}}) == ClickOrigin(
        "C2", "3.0"
    )
    assert ClickOrigin.of({}) == ClickOrigin("", "")
