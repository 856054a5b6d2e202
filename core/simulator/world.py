"""What the simulated platform's population looks like: where visitors come from, how far each
kind of visitor gets, how borrowers of each grade repay, what people ask support.

Every figure here is a plain module constant, so a reader can see the assumptions the demo data
rests on. Probabilities are per visitor (or per borrower, per conversation) unless said.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Source:
    """A traffic source: the chat channel it lands in, the campaign tag of its links, its share
    of visitors and how much better (>1) or worse than average its visitors convert."""

    name: str
    channel: str  # telegram | web
    campaign: str | None
    share: float
    quality: float
    locale_en: float  # share of visitors writing in English


SOURCES = (
    Source("search ads", "web", "baidu_search", 0.24, 0.9, 0.05),
    Source("app stores", "web", "app_store", 0.12, 1.1, 0.05),
    Source("WeChat moments", "web", "wechat_moments", 0.16, 0.8, 0.02),
    Source("Weibo", "web", "weibo_kol", 0.08, 0.6, 0.03),
    Source("referral", "web", "referral", 0.10, 1.6, 0.05),
    Source("Telegram deep link", "telegram", "tg_channel", 0.12, 1.0, 0.45),
    Source("organic (web)", "web", None, 0.10, 1.2, 0.10),
    Source("organic (Telegram)", "telegram", None, 0.08, 1.2, 0.50),
)

# Visits by weekday (Monday first): weekends are quieter, Monday catches up.
WEEKDAY = (1.15, 1.05, 1.0, 1.0, 0.95, 0.75, 0.7)
GROWTH_PER_DAY = 0.004  # the platform grows: the last day has ~(1 + 0.004 * days) x the first's
HOURS = ((8, 2), (9, 5), (10, 8), (11, 9), (12, 7), (13, 6), (14, 8), (15, 9), (16, 8),
         (17, 7), (18, 6), (19, 8), (20, 10), (21, 9), (22, 6), (23, 2))  # (hour, weight)

# The funnel, before a source's quality: the share of those at one step who take the next.
REGISTER = 0.45
BORROWER_SHARE = 0.2  # of those who register
KYC = 0.78
KYC_MISMATCH = 0.04  # typed their name or number wrong and gave up
CARD = 0.82
RISK = 0.9  # investors only
TOP_UP = 0.72
FIRST_INVEST = 0.85
AUTO_INVEST = 0.6  # of investors who invest
REPEAT_EVERY_DAYS = (3, 21)  # a repeat investor comes back after this many days (uniform)
REPEAT = 0.8  # chance an investor who invested comes back again
# Days between steps (uniform): most people finish a step the same day, some come back later.
STEP_DELAY_DAYS = (0, 0, 0, 1, 2, 5)

# Investors' risk questionnaire: the option index chosen (0 = most careful) and how often.
RISK_STYLES = ((0, 0.1), (1, 0.25), (2, 0.35), (3, 0.2), (4, 0.1))
TOP_UP_AMOUNTS = (Decimal("1000"), Decimal("5000"), Decimal("10000"), Decimal("20000"),
                  Decimal("50000"), Decimal("100000"), Decimal("200000"))
TOP_UP_WEIGHTS = (5, 15, 25, 22, 18, 10, 5)

# Borrowers: products, incomes and jobs give the scorecard its spread of grades.
PRODUCTS = (("consumer", 0.7), ("car", 0.2), ("small_business", 0.06), ("property", 0.04))
EMPLOYMENT = (("salaried", 0.45), ("civil_servant", 0.1), ("self_employed", 0.15),
              ("business_owner", 0.1), ("freelance", 0.12), ("retired", 0.03),
              ("unemployed", 0.05))
INCOMES = (Decimal("3500"), Decimal("6000"), Decimal("9000"), Decimal("15000"),
           Decimal("25000"), Decimal("40000"))
INCOME_WEIGHTS = (12, 25, 25, 20, 12, 6)
APPLY = 0.9  # verified borrowers with a card who apply
REAPPLY = 0.4  # borrowers paying on time who borrow again
REAPPLY_AFTER_DAYS = (30, 120)

# Repayment behaviour by grade: (late payer, defaulter); the rest pay a day early.
BEHAVIOUR = {"AA": (0.03, 0.005), "A": (0.06, 0.012), "B": (0.10, 0.025),
             "C": (0.15, 0.05), "D": (0.22, 0.09), "E": (0.30, 0.15)}
LATE_DAYS = (2, 4, 7, 12, 20, 35, 50)  # how late a late payer pays (uniform pick)
PROMISE = 0.45  # late payers who promise a date when collections call
PROMISE_KEPT = 0.7
RECOVERY = 0.15  # defaulted loans on which something is recovered before write-off

# Support: conversations per active person per day, and what they are.
CONTACT_RATE = 0.005
FAQ_MISS = 0.18  # questions the knowledge base cannot answer
ASK_HUMAN = 0.12  # conversations where the person asks for a human at once
COMPLAIN = 0.03
AFTER_MISS_HUMAN = 0.5  # after a miss, ask for a human
RATE = 0.6  # people who rate a resolved conversation
RATINGS = ((5, 0.55), (4, 0.25), (3, 0.1), (2, 0.05), (1, 0.05))
AGENTS = (("agent.lin", "林客服"), ("agent.zhou", "周客服"), ("agent.emma", "Emma"))
AGENT_MINUTES = (2, 5, 9, 15, 30, 60, 180)  # how long a handover waits for an agent
FEEDBACK = 0.002  # active people leaving free-text feedback a day

MISSES = {
    "zh-CN": ("你们平台有线下门店吗", "可以用比特币充值吗", "今天天气怎么样", "能帮我订机票吗",
              "你们和某某平台比哪个好", "我想应聘客服岗位", "利息可以换成积分吗"),
    "en": ("do you have an office in Singapore", "can I pay with bitcoin",
           "what is the weather today", "can you book a flight for me",
           "are you better than other platforms", "I want to apply for a job"),
}
COMPLAINTS = {"zh-CN": "你们是骗子吗，我要投诉", "en": "this is a scam, I will complain"}
AGENT_REPLIES = {"zh-CN": "您好，我来帮您查一下。", "en": "Hello, let me check that for you."}
FEEDBACK_TEXTS = {
    "zh-CN": ("希望增加更多短期项目", "到账速度很快，满意", "客服回复有点慢",
              "希望支持更多银行卡", "界面很清楚"),
    "en": ("More short-term loans please", "Fast top-up, thanks",
           "Support took a while to answer", "Please support more banks"),
}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
PHONE_PREFIXES = ("135", "136", "137", "138", "139", "150", "158", "186", "187", "188")
REGIONS = ("110105", "310104", "440305", "330106", "510107", "420106", "320102", "370102")
