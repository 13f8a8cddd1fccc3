"""The campaign's timeline as reminders: what goes to whom, when, and until when it is
still worth sending.

The plan: the campaign from 15/7, the exam window 01/8–15/8, round 2 at the hall. Every
reminder is an event with a due time (moved out of the quiet hours) and a time after which
it is no longer meaningful. The lease holder fans an event out once, when it is due: one
outbox row per person in its audience. An event whose due time passed while the bot was
down is fanned out late if it is still meaningful, and dropped if not (``late_policy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from contest.rules import LOCAL_TZ, ContestRules, ReminderRules


class Audience(StrEnum):
    REGISTERED = "registered"  # everyone registered
    NO_ATTEMPT = "no_attempt"  # registered, no round-1 attempt yet
    ATTEMPT_LEFT = "attempt_left"  # can still take a round-1 attempt
    QUALIFIERS = "qualifiers"  # on the confirmed list of round 2


class Reminder(StrEnum):
    """What a reminder says (its text is chosen by this)."""

    LAUNCH = "launch"
    ROUND1_OPEN = "round1_open"
    DAILY = "daily"
    ATTEMPT_LEFT = "attempt_left"
    LAST_DAY = "last_day"
    ROUND2_DAY_BEFORE = "round2_day_before"
    ROUND2_HOUR_BEFORE = "round2_hour_before"


@dataclass(frozen=True)
class CampaignEvent:
    key: str  # unique per event: "daily:2024-08-03"
    reminder: Reminder
    audience: Audience
    at: datetime  # due (aware UTC), outside the quiet hours
    valid_until: datetime  # past this it is not sent at all


def outside_quiet(when: datetime, rules: ReminderRules) -> datetime:
    """``when``, or the end of the quiet hours it falls in."""
    local = when.astimezone(LOCAL_TZ)
    if not rules.quiet(local.time()):
        return when
    end = local.replace(
        hour=rules.quiet_end.hour, minute=rules.quiet_end.minute, second=0, microsecond=0
    )
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(when.tzinfo)


def _at(day: date, moment: time) -> datetime:
    return datetime.combine(day, moment, tzinfo=LOCAL_TZ)


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=LOCAL_TZ)


def schedule(rules: ContestRules, *, round2_scheduled: bool = True) -> list[CampaignEvent]:
    """Every reminder of the contest, in time order. Round 2's come only once its date is
    decided (``round2_scheduled``)."""
    reminders = rules.reminders
    if not reminders.enabled:
        return []
    r1 = rules.round1.window
    opens_day = r1.opens.astimezone(LOCAL_TZ).date()
    last_day = (r1.closes - timedelta(microseconds=1)).astimezone(LOCAL_TZ).date()
    events: list[CampaignEvent] = []

    def add(
        key: str, reminder: Reminder, audience: Audience, at: datetime, until: datetime
    ) -> None:
        due = outside_quiet(at, reminders)
        if due < until:
            events.append(CampaignEvent(key, reminder, audience, due, until))

    if reminders.launch:
        # Worth sending until the exam window opens (the opening announcement follows).
        add("launch", Reminder.LAUNCH, Audience.REGISTERED, rules.campaign.opens, r1.opens)
    if reminders.round1_opening:
        add(
            "round1_open",
            Reminder.ROUND1_OPEN,
            Audience.REGISTERED,
            r1.opens,
            min(r1.opens + timedelta(days=1), r1.closes),
        )
    special: set[date] = set()
    if reminders.last_day_at is not None:
        special.add(last_day)
        add(
            "last_day",
            Reminder.LAST_DAY,
            Audience.ATTEMPT_LEFT,
            max(_at(last_day, reminders.last_day_at), r1.opens),
            r1.closes,
        )
    if reminders.days_before_close is not None and reminders.daily_at is not None:
        day = last_day - timedelta(days=reminders.days_before_close)
        if opens_day <= day < last_day:
            special.add(day)
            add(
                f"attempt_left:{day.isoformat()}",
                Reminder.ATTEMPT_LEFT,
                Audience.ATTEMPT_LEFT,
                max(_at(day, reminders.daily_at), r1.opens),
                min(_end_of(day), r1.closes),
            )
    if reminders.daily_at is not None:
        day = opens_day
        while day <= last_day:
            if day not in special:
                add(
                    f"daily:{day.isoformat()}",
                    Reminder.DAILY,
                    Audience.NO_ATTEMPT,
                    max(_at(day, reminders.daily_at), r1.opens),
                    min(_end_of(day), r1.closes),
                )
            day += timedelta(days=1)
    r2 = rules.round2.round.window
    if round2_scheduled and reminders.round2_day_before:
        add(
            "round2_day_before",
            Reminder.ROUND2_DAY_BEFORE,
            Audience.QUALIFIERS,
            r2.opens - timedelta(days=1),
            r2.opens,
        )
    if round2_scheduled and reminders.round2_hour_before:
        add(
            "round2_hour_before",
            Reminder.ROUND2_HOUR_BEFORE,
            Audience.QUALIFIERS,
            r2.opens - timedelta(hours=1),
            r2.opens,
        )
    return sorted(events, key=lambda e: (e.at, e.key))


def late_policy(event: CampaignEvent, now: datetime) -> bool:
    """Whether an event due at ``event.at`` and found at ``now`` (the bot was down, or
    busy) is still sent: yes while it is meaningful (before ``valid_until``); a reminder
    of a day already over, or an opening already past, is dropped."""
    return now < event.valid_until
