"""`/reports/daily`: per local day, how the appointments' reminders went, and the rates the front desk
watches (confirmed, and not answered, of those sent)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from api.dates import midnights, report_days, zone_or
from api.deps import SettingsDep, StoreDep, require_api_key
from api.schemas import DailyReport
from db.reports import REPORT_COUNTS

router = APIRouter(prefix="/reports", tags=["reports"], dependencies=[Depends(require_api_key)])


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def report_row(label: str, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "date": label,
        **counts,
        "confirmation_rate": _rate(counts["confirmed"], counts["sent"]),
        "no_answer_rate": _rate(counts["no_answer"], counts["sent"]),
    }


@router.get("/daily", response_model=DailyReport)
async def daily(
    store: StoreDep,
    settings: SettingsDep,
    start: str | None = Query(
        None, alias="from", description="first day, YYYY-MM-DD (default: 6 days before to)"
    ),
    end: str | None = Query(None, alias="to", description="last day, included (default: today)"),
    timezone: str | None = Query(None, description="the zone of the days (default ORG_TIMEZONE)"),
) -> dict[str, Any]:
    zone = zone_or(timezone, settings.org_timezone)
    days = report_days(start, end, zone, datetime.now(UTC).astimezone(zone).date())
    found = await store.daily_counts(midnights(days, zone))
    rows = []
    total = dict.fromkeys(REPORT_COUNTS, 0)
    for place, day in enumerate(days):
        record = found.get(place)
        counts = {name: int(record[name]) if record else 0 for name in REPORT_COUNTS}
        for name in REPORT_COUNTS:
            total[name] += counts[name]
        rows.append(report_row(day.isoformat(), counts))
    return {"timezone": zone.key, "days": rows, "total": report_row("total", total)}
