"""Small pieces the lending services share: percent maths, masked borrower facts, loan rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.domain.money import Currency, Money

PROVINCES = {
    "11": ("北京", "Beijing"), "12": ("天津", "Tianjin"), "13": ("河北", "Hebei"),
    "14": ("山西", "Shanxi"), "15": ("内蒙古", "Inner Mongolia"), "21": ("辽宁", "Liaoning"),
    "22": ("吉林", "Jilin"), "23": ("黑龙江", "Heilongjiang"), "31": ("上海", "Shanghai"),
    "32": ("江苏", "Jiangsu"), "33": ("浙江", "Zhejiang"), "34": ("安徽", "Anhui"),
    "35": ("福建", "Fujian"), "36": ("江西", "Jiangxi"), "37": ("山东", "Shandong"),
    "41": ("河南", "Henan"), "42": ("湖北", "Hubei"), "43": ("湖南", "Hunan"),
    "44": ("广东", "Guangdong"), "45": ("广西", "Guangxi"), "46": ("海南", "Hainan"),
    "50": ("重庆", "Chongqing"), "51": ("四川", "Sichuan"), "52": ("贵州", "Guizhou"),
    "53": ("云南", "Yunnan"), "54": ("西藏", "Tibet"), "61": ("陕西", "Shaanxi"),
    "62": ("甘肃", "Gansu"), "63": ("青海", "Qinghai"), "64": ("宁夏", "Ningxia"),
    "65": ("新疆", "Xinjiang"), "71": ("台湾", "Taiwan"), "81": ("香港", "Hong Kong"),
    "82": ("澳门", "Macau"), "83": ("台湾", "Taiwan"),
}
INCOME_BANDS = (Decimal(3000), Decimal(5000), Decimal(10000), Decimal(20000), Decimal(50000))


def pct(value: Decimal) -> Decimal:
    """A percent setting (2.5) as a fraction (0.025)."""
    return value / 100


def age_band(birth: date | None, today: date) -> str:
    if birth is None:
        return "unknown"
    age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    low = max(18, age // 5 * 5)
    return f"{low}-{low + 4}"


def income_band(monthly_income: Decimal) -> str:
    lower = Decimal(0)
    for upper in INCOME_BANDS:
        if monthly_income < upper:
            return f"{lower:.0f}-{upper:.0f}"
        lower = upper
    return f"{INCOME_BANDS[-1]:.0f}+"


def masked_facts(*, name_masked: str, birth: date | None, today: date, region: str | None,
                 monthly_income: Decimal, employment: str) -> dict[str, Any]:
    """What investors may know of a borrower: no name beyond the surname, bands not numbers."""
    province = PROVINCES.get((region or "")[:2])
    return {"name": name_masked[:1] + "*" if name_masked else "*",
            "age_band": age_band(birth, today),
            "province_zh": province[0] if province else None,
            "province_en": province[1] if province else None,
            "income_band": income_band(monthly_income), "employment": employment}


@dataclass(frozen=True, slots=True)
class Listing:
    """A loan as investors see it."""

    id: int
    product: str
    amount: Money
    funded: Money
    term_months: int
    method: str
    annual_rate: Decimal
    grade: str
    risk_level: str
    purpose: str
    facts: dict[str, Any]
    investors: int
    status: str
    novice_only: bool
    listed_at: datetime
    expires_at: datetime
    borrower_id: int

    @property
    def remaining(self) -> Money:
        return self.amount - self.funded

    @property
    def funded_pct(self) -> Decimal:
        return (self.funded.amount * 100 / self.amount.amount).quantize(Decimal("0.1"))

    def time_left(self, now: datetime) -> int:
        """Seconds until the listing closes (0 once it has)."""
        return max(0, int((self.expires_at - now).total_seconds()))


def listing_from_row(row: Any, currency: Currency) -> Listing:
    return Listing(
        row.id, row.product, Money.rounded(row.amount, currency),
        Money.rounded(row.funded, currency), row.term_months, row.method, row.annual_rate,
        row.grade, row.risk_level, row.purpose, row.facts, row.investors, row.status,
        row.novice_only, row.listed_at, row.expires_at, row.borrower_id)
