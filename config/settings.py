"""Typed settings: defaults in code, overridden by a TOML file, overridden by ``P2P_*`` variables.

Precedence (highest first): keyword arguments, environment (``P2P_HTTP_PORT``; nested groups with a
double underscore, ``P2P_MONEY__SCALE``), the TOML file (``P2P_CONFIG_FILE`` or ``./p2p.toml``),
the defaults below. Business rules live here too, grouped by the part of the product that uses them,
so that operations can change a fee or a limit without touching code.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from collections.abc import Mapping
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "P2P_"
ROUNDING_MODES = {
    "ROUND_HALF_UP": ROUND_HALF_UP,
    "ROUND_HALF_EVEN": ROUND_HALF_EVEN,
    "ROUND_DOWN": ROUND_DOWN,
    "ROUND_UP": ROUND_UP,
}


Rounding = Literal["ROUND_HALF_UP", "ROUND_HALF_EVEN", "ROUND_DOWN", "ROUND_UP"]


class ConfigError(Exception):
    """A setting is missing or has a wrong value; the message names the setting."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MoneySettings(_Group):
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$")
    scale: int = Field(2, ge=0, le=4)
    rounding: Rounding = "ROUND_HALF_UP"


class DatabaseSettings(_Group):
    pool_size: int = Field(10, ge=1, le=200)
    sqlite_busy_timeout_ms: int = Field(30_000, ge=0)
    echo: bool = False


class BatchingSettings(_Group):
    """Write batching (group commit): how many logical operations may share one transaction."""

    max_batch: int = Field(256, ge=1, le=10_000)
    max_delay_ms: float = Field(1.0, ge=0, le=1_000)
    post_many_chunk: int = Field(500, ge=1, le=5_000)


class RegistrationSettings(_Group):
    code_length: int = Field(6, ge=4, le=8)
    code_ttl_seconds: int = Field(300, ge=30)
    code_max_attempts: int = Field(5, ge=1)
    code_resend_seconds: int = Field(60, ge=0)
    codes_per_phone_per_day: int = Field(10, ge=1)
    phone_region: str = Field("CN", pattern=r"^[A-Z]{2}$")
    user_agreement_version: str = "2026-01"
    risk_disclosure_version: str = "2026-01"


class KycSettings(_Group):
    minimum_age: int = Field(18, ge=16, le=30)
    borrower_maximum_age: int = Field(60, ge=30, le=100)
    retry_after_seconds: list[int] = [60, 300, 1800, 7200]
    check_interval_seconds: float = Field(5.0, gt=0)
    document_max_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    document_types: list[str] = ["image/jpeg", "image/png", "application/pdf"]


class WalletSettings(_Group):
    min_top_up: Decimal = Decimal("10.00")
    min_withdrawal: Decimal = Decimal("100.00")
    max_withdrawal: Decimal = Decimal("200000.00")
    daily_withdrawal_limit: Decimal = Decimal("500000.00")
    withdrawal_fee: Decimal = Decimal("2.00")
    aml_large_top_up: Decimal = Decimal("50000.00")
    aml_in_out_hours: int = Field(24, ge=1)
    aml_shared_card_accounts: int = Field(2, ge=2)

    @model_validator(mode="after")
    def _consistent(self) -> WalletSettings:
        for name in ("min_top_up", "min_withdrawal", "max_withdrawal", "daily_withdrawal_limit",
                     "withdrawal_fee", "aml_large_top_up"):
            if getattr(self, name) < 0:
                raise ValueError(f"wallet.{name} must not be negative")
        if self.min_withdrawal > self.max_withdrawal:
            raise ValueError("wallet.min_withdrawal is above wallet.max_withdrawal")
        return self


class SandboxSettings(_Group):
    """Behaviour of the sandbox providers (SMS, identity check, custody bank)."""

    sms_failure_rate: float = Field(0.0, ge=0, le=1)
    identity_delay_seconds: float = Field(0.0, ge=0)
    identity_outcome: Literal["by_name", "match", "mismatch", "unavailable"] = "by_name"
    bank_delay_seconds: float = Field(0.5, ge=0)
    bank_failure_rate: float = Field(0.0, ge=0, le=1)
    bank_duplicate_rate: float = Field(0.1, ge=0, le=1)
    bank_auto_settle: bool = True


RepaymentMethod = Literal["equal_installment", "equal_principal", "interest_first", "bullet"]


class ProductSettings(_Group):
    """A loan product. Percentages are percent (2.5 means 2.5%)."""

    name_zh: str
    name_en: str
    borrower: Literal["person", "company"] = "person"
    min_amount: Decimal
    max_amount: Decimal
    terms: list[int]
    methods: list[RepaymentMethod]
    service_fee_pct: Decimal = Decimal("2.0")
    management_fee_pct: Decimal = Decimal("10.0")
    required_proofs: list[str] = []
    listing_hours: int = Field(72, ge=1)
    secured: bool = False
    auto_disburse: bool = True
    use_of_funds_proof_above: Decimal | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ProductSettings:
        if not 0 < self.min_amount <= self.max_amount:
            raise ValueError("min_amount must be positive and at most max_amount")
        if not self.terms or any(t < 1 or t > 360 for t in self.terms):
            raise ValueError("terms must be 1-360 months")
        if not self.methods:
            raise ValueError("at least one repayment method")
        for name in ("service_fee_pct", "management_fee_pct"):
            if not 0 <= getattr(self, name) < 100:
                raise ValueError(f"{name} must be 0-100")
        return self


def _default_products() -> dict[str, ProductSettings]:
    return {
        "consumer": ProductSettings(
            name_zh="个人消费贷", name_en="Personal consumer loan", min_amount=Decimal("1000"),
            max_amount=Decimal("200000"), terms=[3, 6, 12, 24, 36],
            methods=["equal_installment", "equal_principal"], service_fee_pct=Decimal("2.0"),
            required_proofs=["income_proof"], listing_hours=72),
        "small_business": ProductSettings(
            name_zh="小微企业经营贷", name_en="Small-business loan", borrower="company",
            min_amount=Decimal("10000"), max_amount=Decimal("1000000"), terms=[6, 12, 24],
            methods=["equal_installment", "interest_first"], service_fee_pct=Decimal("3.0"),
            required_proofs=["business_license", "bank_statement"], listing_hours=120,
            auto_disburse=False, use_of_funds_proof_above=Decimal("50000")),
        "car": ProductSettings(
            name_zh="车辆抵押贷", name_en="Car-secured loan", min_amount=Decimal("10000"),
            max_amount=Decimal("200000"), terms=[6, 12, 24, 36],
            methods=["equal_installment", "interest_first"], service_fee_pct=Decimal("2.5"),
            required_proofs=["vehicle_registration"], listing_hours=72, secured=True),
        "property": ProductSettings(
            name_zh="房产抵押贷", name_en="Property-secured loan", min_amount=Decimal("50000"),
            max_amount=Decimal("200000"), terms=[12, 24, 36],
            methods=["equal_installment", "interest_first", "bullet"],
            service_fee_pct=Decimal("1.5"), required_proofs=["property_certificate"],
            listing_hours=168, secured=True, auto_disburse=False),
    }


class LendingSettings(_Group):
    products: dict[str, ProductSettings] = Field(default_factory=_default_products)
    # Regulatory borrowing caps (2016 interim measures, Art. 17), outstanding principal.
    cap_person_platform: Decimal = Decimal("200000")
    cap_person_total: Decimal = Decimal("1000000")
    cap_company_platform: Decimal = Decimal("1000000")
    cap_company_total: Decimal = Decimal("5000000")
    credit_policy_file: Path | None = None
    max_applications_24h: int = Field(3, ge=1)
    max_debt_to_income: Decimal = Decimal("0.60")
    blacklist_identity_hashes: list[str] = []
    blacklist_phone_hashes: list[str] = []
    min_bid: Decimal = Decimal("100")
    bid_multiple: Decimal = Decimal("100")
    novice_cap: Decimal = Decimal("5000")
    protection_contribution_pct: Decimal = Decimal("1.0")
    agreement_version: str = "2026-01"


class PromotionSettings(_Group):
    signup_red_packet: Decimal = Decimal("20.00")
    red_packet_min_investment: Decimal = Decimal("1000.00")
    red_packet_valid_days: int = Field(30, ge=1)
    referral_reward: Decimal = Decimal("50.00")
    interest_boost_pct: Decimal = Decimal("1.0")
    interest_boost_valid_days: int = Field(30, ge=1)


class CollectionStage(_Group):
    """One step of the collections plan: what happens ``offset_days`` from the due date."""

    name: str
    offset_days: int  # negative: before the due date (reminders)
    action: Literal["reminder", "notice", "task", "formal_notice", "escalation",
                    "write_off_review"]
    template: str


def _default_plan() -> list[CollectionStage]:
    return [
        CollectionStage(name="D-3", offset_days=-3, action="reminder",
                        template="repayment_reminder"),
        CollectionStage(name="D-1", offset_days=-1, action="reminder",
                        template="repayment_reminder"),
        CollectionStage(name="D0", offset_days=0, action="reminder",
                        template="repayment_due_today"),
        CollectionStage(name="D+1", offset_days=1, action="notice", template="overdue_notice"),
        CollectionStage(name="D+3", offset_days=3, action="task",
                        template="collections_contact"),
        CollectionStage(name="D+15", offset_days=15, action="formal_notice",
                        template="overdue_formal_notice"),
        CollectionStage(name="D+30", offset_days=30, action="escalation",
                        template="overdue_escalation"),
        CollectionStage(name="D+90", offset_days=90, action="write_off_review",
                        template="overdue_final_notice"),
    ]


class ServicingSettings(_Group):
    auto_debit: bool = True
    early_repayment_fee_pct: Decimal = Decimal("1.0")
    payment_order: list[Literal["penalty", "interest", "principal"]] = [
        "penalty", "interest", "principal"]
    grace_days: int = Field(0, ge=0, le=30)
    penalty_daily_pct: Decimal = Decimal("0.05")
    penalty_cap_pct: Decimal = Decimal("30")  # of the overdue installment's amount
    collections_plan: list[CollectionStage] = Field(default_factory=_default_plan)
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "08:00"
    collection_messages_per_day: int = Field(1, ge=1)
    use_of_funds_days: int = Field(30, ge=1)
    daily_job_time: str = "02:00"
    reminder_hour: int = Field(10, ge=0, le=23)

    @model_validator(mode="after")
    def _consistent(self) -> ServicingSettings:
        if sorted(self.payment_order) != ["interest", "penalty", "principal"]:
            raise ValueError("payment_order must name penalty, interest and principal once each")
        for name in ("quiet_hours_start", "quiet_hours_end", "daily_job_time"):
            text = getattr(self, name)
            try:
                hours, minutes = (int(x) for x in text.split(":"))
                if not (0 <= hours < 24 and 0 <= minutes < 60):
                    raise ValueError
            except ValueError:
                raise ValueError(f"{name} must be HH:MM, got {text!r}") from None
        offsets = [s.offset_days for s in self.collections_plan]
        if offsets != sorted(offsets) or len(set(offsets)) != len(offsets):
            raise ValueError("collections_plan stages must have increasing offset_days")
        return self


class DialogSettings(_Group):
    idle_minutes: int = Field(30, ge=1)
    escalation_words: list[str] = ["人工", "转人工", "客服", "真人", "agent", "human",
                                   "operator", "real person"]
    complaint_words: list[str] = ["投诉", "骗子", "诈骗", "报警", "律师", "曝光", "起诉",
                                  "complaint", "complain", "fraud", "scam", "lawyer", "police",
                                  "sue"]


class SupportSettings(_Group):
    """Human support: business hours, agents' load, VIP customers, staff security."""

    hours: str = "09:00-21:00"  # local business time; outside, the bot says when agents are back
    days: list[int] = [1, 2, 3, 4, 5, 6, 7]  # ISO weekdays with support
    holidays: list[str] = []  # ISO dates without support, e.g. "2026-10-01"
    capacity: int = Field(5, ge=1)  # open conversations per agent unless set per agent
    vip_invested: list[Decimal] = [Decimal("100000"), Decimal("500000")]  # tier 1, tier 2
    canned_replies_file: Path | None = None  # default: config/canned_replies.toml
    login_max_failures: int = Field(5, ge=1)  # per account and per IP, then locked
    login_lock_minutes: int = Field(15, ge=1)
    session_idle_minutes: int = Field(30, ge=1)
    reveal_reasons: list[str] = ["customer verification", "complaint handling",
                                 "collections", "legal request"]

    @field_validator("hours")
    @classmethod
    def _hours_span(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d", value):
            raise ValueError("business hours as HH:MM-HH:MM, e.g. 09:00-21:00")
        return value


class WebChatSettings(_Group):
    """The web-chat widget's WebSocket: who may connect and how much."""

    allowed_origins: list[str] = []  # empty: only the server's own origin
    max_message_chars: int = Field(4000, ge=1)
    messages_per_second: float = Field(5.0, gt=0)  # per session, bursts of twice that
    connections_per_ip: int = Field(20, ge=1)
    session_days: int = Field(30, ge=1)  # how long a browser can resume its chat


class DeliverySettings(_Group):
    """Sending to chat channels: per-chat and overall pace, retries, leases."""

    per_chat_interval_ms: int = Field(1000, ge=0)  # Telegram: about one message a second a chat
    per_second: float = Field(30.0, gt=0)  # Telegram: about 30 messages a second in all
    max_attempts: int = Field(6, ge=1)  # server errors and timeouts, with backoff
    backoff_ms: int = Field(500, ge=1)  # first retry; doubles each attempt
    lease_seconds: int = Field(60, ge=5)  # a claimed message is resent after this if unconfirmed
    batch: int = Field(500, ge=1)  # messages claimed at once


class NotifySettings(_Group):
    """Proactive messages: the dispatcher, broadcasts and what counts as a conversion. The
    default quiet hours are ``servicing.quiet_hours_start`` - ``quiet_hours_end``."""

    templates_file: Path | None = None  # default: config/notices.toml (group, mute, urgent)
    batch: int = Field(500, ge=1)  # notices handed over per dispatcher pass
    poll_seconds: float = Field(1.0, gt=0)  # how often the dispatcher looks when idle
    lease_seconds: int = Field(15, ge=2)  # single-process work (Telegram sender, SQLite dispatch)
    broadcast_chunk: int = Field(2000, ge=1)  # recipients enqueued per transaction
    conversion_days: int = Field(7, ge=1)  # a top-up or investment this soon after converts
    marketing_in_flight: int = Field(30, ge=1)  # marketing messages a sender holds at once


class MarketingSettings(_Group):
    """What acquisition costs, for cost per registration and per first investor (CPA)."""

    # campaign tag (as in links: ?start=<campaign> / utm_campaign) -> spend per day, in currency
    campaign_daily_spend: dict[str, Decimal] = {}

    @field_validator("campaign_daily_spend")
    @classmethod
    def _spend_is_money(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for campaign, spend in value.items():
            if not campaign or spend < 0 or spend.as_tuple().exponent < -4:  # type: ignore[operator]
                raise ValueError(f"campaign {campaign!r}: spend must be an amount >= 0")
        return value


class DashboardSettings(_Group):
    """The managers' dashboards (``/dashboards/``)."""

    refresh_seconds: int = Field(60, ge=5, le=3600)  # live pages (Overview, Support) reload


class Settings(BaseSettings):
    """Everything P2P Desk reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None  # live updates between several serve processes
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    secret_key: SecretStr | None = None
    data_key: SecretStr | None = None
    timezone: str = "Asia/Shanghai"
    locale: Literal["zh-CN", "en"] = "zh-CN"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # The first start of the embedded SQLite seeds a demo platform (run.py seed) unless false.
    demo_data: bool = True
    demo_users: int = Field(2000, ge=1)
    demo_days: int = Field(180, ge=1, le=3650)
    # Telegram (named as P2P_TELEGRAM_TOKEN etc.); without a token the bot is off.
    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None

    money: MoneySettings = MoneySettings()
    database: DatabaseSettings = DatabaseSettings()
    batching: BatchingSettings = BatchingSettings()
    registration: RegistrationSettings = RegistrationSettings()
    kyc: KycSettings = KycSettings()
    wallet: WalletSettings = WalletSettings()
    sandbox: SandboxSettings = SandboxSettings()
    lending: LendingSettings = LendingSettings()
    promotions: PromotionSettings = PromotionSettings()
    servicing: ServicingSettings = ServicingSettings()
    dialog: DialogSettings = DialogSettings()
    delivery: DeliverySettings = DeliverySettings()
    support: SupportSettings = SupportSettings()
    webchat: WebChatSettings = WebChatSettings()
    notify: NotifySettings = NotifySettings()
    dashboards: DashboardSettings = DashboardSettings()
    marketing: MarketingSettings = MarketingSettings()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return value

    @field_validator("telegram_token")
    @classmethod
    def _telegram_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"\d+:[A-Za-z0-9_-]{1,128}",
                                                  value.get_secret_value()):
            raise ValueError("a bot token looks like 123456789:AAE... (from @BotFather)")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}",
                                                  value.get_secret_value()):
            raise ValueError("1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @model_validator(mode="after")
    def _webhook_needs_url_and_secret(self) -> Settings:
        if self.telegram_token is not None and self.telegram_mode == "webhook" and (
                not self.telegram_webhook_url or self.telegram_webhook_secret is None):
            raise ValueError("webhook mode needs P2P_TELEGRAM_WEBHOOK_URL and "
                             "P2P_TELEGRAM_WEBHOOK_SECRET")
        return self

    @field_validator("data_key")
    @classmethod
    def _data_key_is_32_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_data_key(value.get_secret_value())
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    # Derived values -------------------------------------------------------------------------

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'p2p.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def rounding_mode(self) -> str:
        return ROUNDING_MODES[self.money.rounding]


def decode_data_key(text: str) -> bytes:
    """The data key is 32 random bytes in URL-safe base64 (what ``generate_data_key`` makes)."""
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ValueError("must be URL-safe base64") from exc
    if len(raw) != 32:
        raise ValueError("must decode to 32 bytes")
    return raw


def _config_file() -> Path | None:
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{ENV_PREFIX}CONFIG_FILE: no such file {path}")
        return path
    default = Path("p2p.toml")
    return default if default.is_file() else None


def setting_name(loc: tuple[Any, ...]) -> str:
    """``('money', 'scale')`` -> ``P2P_MONEY__SCALE (money.scale)``: what a user would set."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return f"{ENV_PREFIX}{'__'.join(parts).upper()} ({'.'.join(parts)})"


# Variables with our prefix that are not settings but are read by tests and benchmarks.
FOREIGN_VARIABLES = ("P2P_CONFIG_FILE", "P2P_TEST_", "P2P_BENCH_")


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``P2P_*`` variables that name no setting (a typo would otherwise be ignored silently)."""
    fields = {name.upper() for name in Settings.model_fields}
    unknown = []
    for name in environ:
        if not name.startswith(ENV_PREFIX) or name.startswith(FOREIGN_VARIABLES):
            continue
        head = name[len(ENV_PREFIX):].split("__", 1)[0]
        if head not in fields:
            unknown.append(name)
    return sorted(unknown)


def load_settings(**overrides: Any) -> Settings:
    """Read settings; every problem becomes one ``ConfigError`` naming the setting."""
    unknown = unknown_variables(os.environ)
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: no such setting (see config/settings.py)")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [f"{setting_name(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{_config_file()}: not valid TOML: {exc}") from None
    except SettingsError as exc:
        raise ConfigError(f"{exc}") from None
