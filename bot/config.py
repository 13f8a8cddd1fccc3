"""The contest TOML file: schedule and rules, in the plan's local time (Asia/Ho_Chi_Minh)."""

from __future__ import annotations

import tomllib
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from contest.rules import (
    DEFAULT_PREDICTION_QUESTION,
    LOCAL_TZ,
    TIE_RULES,
    ContestRules,
    PrizeRules,
    ReminderRules,
    Round2Rules,
    RoundRules,
    TieBreak,
    Window,
)


class ConfigError(Exception):
    """The contest file is missing, unreadable or has a missing or invalid value."""


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"thiếu bảng [{name}]")
    return value


def _moment(table: dict[str, Any], section: str, key: str, *, end: bool) -> datetime:
    """A local date-time; a bare date means the start of that day (or, for an end, the
    whole of that day: the window closes at the next midnight)."""
    if key not in table:
        raise ConfigError(f"thiếu giá trị {section}.{key}")
    value = table[key]
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value + timedelta(days=1) if end else value, time())
    else:
        raise ConfigError(
            f"{section}.{key} phải là ngày hoặc ngày giờ (ví dụ 2024-08-01), không phải {value!r}"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LOCAL_TZ)
    return moment


def _int(
    table: dict[str, Any], section: str, key: str, default: int | None = None, low: int = 1
) -> int:
    """A whole number; required unless a default is given."""
    if key not in table and default is None:
        raise ConfigError(f"thiếu giá trị {section}.{key}")
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{section}.{key} phải là số nguyên, nhỏ nhất là {low}")
    return value


def _window(table: dict[str, Any], section: str, start: str, stop: str) -> Window:
    opens = _moment(table, section, start, end=False)
    closes = _moment(table, section, stop, end=True)
    if closes <= opens:
        raise ConfigError(f"{section}.{stop} phải sau {section}.{start}")
    return Window(opens, closes)


def _clock_time(table: dict[str, Any], section: str, key: str, default: time | None) -> time | None:
    """A local time of day ("19:00", or a TOML time); false switches the reminder off."""
    if key not in table:
        return default
    value = table[key]
    if value is False:
        return None
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        try:
            hours, minutes = (int(part) for part in value.strip().split(":"))
            return time(hours, minutes)
        except ValueError:
            pass
    raise ConfigError(
        f'{section}.{key} phải là giờ trong ngày dạng "19:00" (hoặc false để tắt), '
        f"không phải {value!r}"
    )


def _flag(table: dict[str, Any], section: str, key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{section}.{key} phải là true hoặc false")
    return value


def _reminders(data: dict[str, Any]) -> ReminderRules:
    table = data.get("reminders", {})
    if not isinstance(table, dict):
        raise ConfigError("[reminders] phải là một bảng")
    defaults = ReminderRules()
    days = table.get("days_before_close", defaults.days_before_close)
    if days is False:
        days = None
    elif isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError("reminders.days_before_close phải là số nguyên từ 1 (hoặc false)")
    quiet_start = _clock_time(table, "reminders", "quiet_start", defaults.quiet_start)
    quiet_end = _clock_time(table, "reminders", "quiet_end", defaults.quiet_end)
    return ReminderRules(
        enabled=_flag(table, "reminders", "enabled", defaults.enabled),
        launch=_flag(table, "reminders", "launch", defaults.launch),
        round1_opening=_flag(table, "reminders", "round1_opening", defaults.round1_opening),
        daily_at=_clock_time(table, "reminders", "daily_at", defaults.daily_at),
        days_before_close=days,
        last_day_at=_clock_time(table, "reminders", "last_day_at", defaults.last_day_at),
        round2_day_before=_flag(
            table, "reminders", "round2_day_before", defaults.round2_day_before
        ),
        round2_hour_before=_flag(
            table, "reminders", "round2_hour_before", defaults.round2_hour_before
        ),
        quiet_start=quiet_start or defaults.quiet_start,
        quiet_end=quiet_end or defaults.quiet_end,
    )


MAX_PREDICTION_QUESTION = 300  # characters: it is shown under every last answer


def _tie_rule(data: dict[str, Any]) -> tuple[tuple[TieBreak, ...], str]:
    """``[ranking]``: ``tie_break = ["time"]`` (the default) or ``["prediction", "time"]``,
    and the prediction question's text (a default one when prediction is on without it)."""
    table = data.get("ranking", {})
    if not isinstance(table, dict):
        raise ConfigError("[ranking] phải là một bảng")
    allowed = " hoặc ".join(
        "[" + ", ".join(f'"{tie.value}"' for tie in rule) + "]" for rule in TIE_RULES
    )
    value = table.get("tie_break", ["time"])
    rule = None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        wanted = tuple(v.strip().lower() for v in value)
        rule = next((r for r in TIE_RULES if tuple(t.value for t in r) == wanted), None)
    if rule is None:
        raise ConfigError(f"ranking.tie_break phải là {allowed}, không phải {value!r}")
    question = table.get("prediction_question", "")
    if not isinstance(question, str):
        raise ConfigError("ranking.prediction_question phải là văn bản")
    question = " ".join(question.split())
    if len(question) > MAX_PREDICTION_QUESTION:
        raise ConfigError(
            f"ranking.prediction_question dài {len(question)} ký tự, tối đa "
            f"{MAX_PREDICTION_QUESTION} ký tự"
        )
    if TieBreak.PREDICTION in rule and not question:
        question = DEFAULT_PREDICTION_QUESTION
    return rule, question


def parse_rules(data: dict[str, Any]) -> ContestRules:
    campaign_t = _table(data, "campaign")
    round1_t = _table(data, "round1")
    round2_t = _table(data, "round2")
    prizes_t = _table(data, "prizes")

    campaign = _window(campaign_t, "campaign", "starts", "ends")
    round1 = RoundRules(
        number=1,
        window=_window(round1_t, "round1", "opens", "closes"),
        questions=_int(round1_t, "round1", "questions"),
        minutes=_int(round1_t, "round1", "minutes"),
        attempts=_int(round1_t, "round1", "attempts"),
    )
    if "min_ratio" not in round2_t:
        raise ConfigError("thiếu giá trị round2.min_ratio")
    ratio = round2_t["min_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise ConfigError("round2.min_ratio phải là số từ 0 đến 1")
    if "venue" not in round2_t:
        raise ConfigError('thiếu giá trị round2.venue (để trống "" nếu chưa có)')
    venue = round2_t["venue"]
    if not isinstance(venue, str):
        raise ConfigError("round2.venue phải là văn bản")
    # Whether round 2's date and venue are decided: until then nothing presents the
    # file's dates as decided (the example's are placeholders). Absent: not decided.
    scheduled = _flag(round2_t, "round2", "scheduled", False)
    round2 = Round2Rules(
        round=RoundRules(
            number=2,
            window=_window(round2_t, "round2", "opens", "closes"),
            questions=_int(round2_t, "round2", "questions"),
            minutes=_int(round2_t, "round2", "minutes"),
            attempts=_int(round2_t, "round2", "attempts", 1),
        ),
        qualifiers=_int(round2_t, "round2", "qualifiers"),
        min_ratio=float(ratio),
        venue=venue,
        scheduled=scheduled,
    )
    prizes = PrizeRules(
        first=_int(prizes_t, "prizes", "first", low=0),
        second=_int(prizes_t, "prizes", "second", low=0),
        third=_int(prizes_t, "prizes", "third", low=0),
        consolation=_int(prizes_t, "prizes", "consolation", low=0),
        first_amount=_int(prizes_t, "prizes", "first_amount", 3_000_000, low=0),
        second_amount=_int(prizes_t, "prizes", "second_amount", 2_000_000, low=0),
        third_amount=_int(prizes_t, "prizes", "third_amount", 1_000_000, low=0),
        consolation_amount=_int(prizes_t, "prizes", "consolation_amount", 500_000, low=0),
    )
    if round2.round.window.opens < round1.window.closes:
        raise ConfigError("round2.opens không được trước round1.closes")
    tie_break, question = _tie_rule(data)
    return ContestRules(
        campaign=campaign,
        round1=round1,
        round2=round2,
        prizes=prizes,
        reminders=_reminders(data),
        tie_break=tie_break,
        prediction_question=question,
    )


def load_rules(path: Path) -> ContestRules:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"không tìm thấy tệp cấu hình {path} (đặt biến CONTEST_CONFIG)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"không đọc được tệp cấu hình {path}: {exc}") from None
    return parse_rules(data)
