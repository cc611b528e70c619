"""A person reviews a finished restore drill: the runbook's "Tested: [date] · Result"
line then names who looked at the result. Once per drill (a guarded update), by someone
other than whoever started it by hand, only from the drill's own message; a refused
review is answered, recorded and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from backupbot.clock import Clock
from backupbot.commands.click_origin import ClickOrigin, mismatch, refusal_facts
from backupbot.commands.drill_model import record_drill_incident
from backupbot.phrases import Actor, Name, Phrase, say
from backupbot.storage.drills import DrillLog, DrillRecord
from backupbot.storage.incidents import IncidentLog


@dataclass(frozen=True)
class DrillReview:
    """What a review click did: the drill as it now stands, and why not if refused."""

    record: DrillRecord
    refusal: Phrase | None = None


class DrillReviews:
    def __init__(self, drills: DrillLog, incidents: IncidentLog, clock: Clock) -> None:
        self._drills = drills
        self._incidents = incidents
        self._clock = clock

    def review(self, drill_id: str, user: str, origin: ClickOrigin | None = None) -> DrillReview:
        """Record `user`'s review of drill `drill_id` (raises `NotFound` for no such drill)."""
        record = self._drills.get(drill_id)
        now = self._clock.now()
        what = say("drill {id}", id=Name(record.id))
        wrong = mismatch(origin, record.channel, record.message_ts, what)
        if origin is not None and wrong is not None:
            return self._refuse(record, user, wrong, refusal_facts(origin, wrong, "review"))
        refusal = _refusal(record, user)
        if refusal is not None:
            return self._refuse(record, user, refusal, {"code": "review", "reason": str(refusal)})
        with self._incidents.atomic():
            if not self._drills.mark_reviewed(record.id, user, now):
                current = self._drills.get(record.id)
                return self._refuse(current, user, _refusal(current, user) or _busy(), {})
            record = self._drills.get(record.id)
            record_drill_incident(
                self._incidents, now, user, "drill.reviewed", "ok", record, result=record.status
            )
        return DrillReview(record)

    def _refuse(
        self, record: DrillRecord, user: str, refusal: Phrase, facts: dict[str, str]
    ) -> DrillReview:
        now = self._clock.now()
        record_drill_incident(
            self._incidents, now, user, "drill.review_refused", "refused", record, **facts
        )
        return DrillReview(record, refusal)


def _refusal(record: DrillRecord, user: str) -> Phrase | None:
    if not record.finished:
        return say("The drill is still running; review it once it has finished.")
    if record.reviewed_by is not None:
        return say(
            "{who} already reviewed this drill; nothing changed.", who=Actor(record.reviewed_by)
        )
    if record.actor == user:
        return say(
            "You started this drill, so someone else reviews its result: four eyes on "
            "every restore test."
        )
    return None


def _busy() -> Phrase:
    return say("The drill changed meanwhile; press Reviewed again.")
