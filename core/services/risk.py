"""Investor risk profile: the questionnaire's result, valid for a year, and suitability.

An investor at level Cn may buy products of risk R1..Rn only (the mapping is data in
``config/risk_questionnaire.toml``). An assessment is required before the first investment and
expires after ``validity_months``; the lending part calls ``require_suitable`` before every bid.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from core import analytics
from core.adapters.tables import risk_profiles
from core.adapters.uow import UnitOfWork
from core.domain.errors import RiskAssessmentRequired
from core.domain.risk_profile import Assessment, Questionnaire


@dataclass(frozen=True, slots=True)
class RiskProfile:
    level: str
    score: int
    assessed_at: datetime
    expires_at: datetime


def add_months(moment: datetime, months: int) -> datetime:
    """Same day ``months`` later, or the month's last day (29 Feb + 12 months -> 28 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class RiskProfiles:
    def __init__(self, questionnaire: Questionnaire) -> None:
        self.questionnaire = questionnaire

    async def assess(self, uow: UnitOfWork, user_id: int,
                     answers: Mapping[str, str]) -> RiskProfile:
        assessment: Assessment = self.questionnaire.score(answers)
        now = uow.clock.now()
        expires = add_months(now, self.questionnaire.validity_months)
        await uow.conn.execute(risk_profiles.insert().values(
            user_id=user_id, level=assessment.level, score=assessment.score,
            answers=dict(assessment.answers), version=self.questionnaire.version,
            assessed_at=now, expires_at=expires))
        await analytics.track(uow, "risk_assessed", user_id=user_id,
                              props={"level": assessment.level, "score": assessment.score})
        return RiskProfile(assessment.level, assessment.score, now, expires)

    async def current(self, uow: UnitOfWork, user_id: int) -> RiskProfile | None:
        """The latest assessment if it has not expired."""
        r = risk_profiles.c
        row = (await uow.conn.execute(
            select(r.level, r.score, r.assessed_at, r.expires_at).where(r.user_id == user_id)
            .order_by(r.assessed_at.desc(), r.id.desc()).limit(1))).first()
        if row is None or row.expires_at <= uow.clock.now():
            return None
        return RiskProfile(row.level, row.score, row.assessed_at, row.expires_at)

    async def require_suitable(self, uow: UnitOfWork, user_id: int, product_risk: str) -> str:
        """Refuse unless the investor's valid level covers ``product_risk``; return the level."""
        profile = await self.current(uow, user_id)
        if profile is None:
            raise RiskAssessmentRequired("take the risk questionnaire first")
        self.questionnaire.check_suitability(profile.level, product_risk)
        return profile.level
