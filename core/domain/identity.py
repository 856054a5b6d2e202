"""Identity: who a user is, checked before real-name verification and card binding.

Everything here is a pure function of its input: phone numbers (via ``phonenumbers``), mainland
resident ID numbers (GB 11643: region, birth date, ISO 7064 MOD 11-2 check character), passports,
ages, full names and bank card numbers (Luhn). Each broken rule raises its own ``DomainError``; the
``reason`` param says which check failed. Messages never quote the rejected value, because errors
are logged and these values are personal data.

Input is normalised first (NFKC turns full-width digits and letters into ASCII, spaces are dropped
or collapsed), so what we store is canonical. The ``mask_*`` helpers say what a screen or a log line
may show of a value; they never raise, so a log call cannot fail.

The bank BIN table is data (``config/bank_bins.csv``), read only when ``BankBins.load`` is called;
a card belongs to the bank with the longest matching BIN prefix.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import phonenumbers

from core.domain.errors import (
    InvalidCardNumber,
    InvalidIdNumber,
    InvalidName,
    InvalidPassport,
    InvalidPhone,
    OverAge,
    UnderAge,
    UnsupportedBank,
)


def _nfkc(text: object) -> str:
    return unicodedata.normalize("NFKC", text) if isinstance(text, str) else ""


def _without_spaces(text: str) -> str:
    return "".join(text.split())


# Phone ------------------------------------------------------------------------------------------

# Digits and the punctuation people type. This also keeps out what phonenumbers would quietly
# accept and we must not: letters ("vanity" numbers) and extensions ("ext. 12", "#12").
_PHONE_TEXT = re.compile(r"\+?[0-9 ().\-]+")


def parse_phone(text: str, region: str = "CN") -> str:
    """A valid phone number in E.164 form ("+8613812345678"); ``region`` applies without "+"."""
    cleaned = " ".join(_nfkc(text).split())
    if not _PHONE_TEXT.fullmatch(cleaned):
        raise InvalidPhone("a phone number has only digits, spaces, +, -, ( and )")
    try:
        number = phonenumbers.parse(cleaned, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Resident ID ------------------------------------------------------------------------------------

# Province-level codes of GB/T 2260, plus 83, used by residence permits of Taiwan residents
# (those of Hong Kong and Macau residents use 81 and 82, like the regions themselves).
PROVINCE_CODES = frozenset(
    {
        *("11", "12", "13", "14", "15"),  # 北京 天津 河北 山西 内蒙古
        *("21", "22", "23"),  # 辽宁 吉林 黑龙江
        *("31", "32", "33", "34", "35", "36", "37"),  # 上海 江苏 浙江 安徽 福建 江西 山东
        *("41", "42", "43", "44", "45", "46"),  # 河南 湖北 湖南 广东 广西 海南
        *("50", "51", "52", "53", "54"),  # 重庆 四川 贵州 云南 西藏
        *("61", "62", "63", "64", "65"),  # 陕西 甘肃 青海 宁夏 新疆
        *("71", "81", "82", "83"),  # 台湾 香港 澳门, Taiwan residents' residence permits
    }
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")


@dataclass(frozen=True, slots=True)
class ResidentId:
    number: str  # canonical: 18 characters, upper-case X
    region_code: str  # the six-digit administrative division code
    birth_date: date
    sex: Literal["M", "F"]

    @property
    def province_code(self) -> str:
        return self.region_code[:2]


def _id_check_char(body: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    return _ID_CHECK_CHARS[sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]


def validate_resident_id(text: str, today: date) -> ResidentId:
    """A mainland resident ID (or HK/Macau/Taiwan residence permit) number, checked in full."""
    number = _without_spaces(_nfkc(text)).upper()
    if not _RESIDENT_ID.fullmatch(number):
        raise InvalidIdNumber("an ID number is 17 digits and a digit or X", reason="id_format")
    if number[:2] not in PROVINCE_CODES:
        raise InvalidIdNumber("the ID number has no such region", reason="id_region")
    try:
        birth_date = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        birth_date = None
    if birth_date is None or birth_date.year < 1900 or birth_date > today:
        raise InvalidIdNumber("the ID number has an impossible birth date", reason="id_birth_date")
    if _id_check_char(number[:17]) != number[17]:
        raise InvalidIdNumber("the ID number's check character is wrong", reason="id_checksum")
    sex: Literal["M", "F"] = "M" if int(number[16]) % 2 else "F"
    return ResidentId(number=number, region_code=number[:6], birth_date=birth_date, sex=sex)


# Passport ---------------------------------------------------------------------------------------

# ISO 3166-1: each entry is alpha-2 followed by alpha-3 (all 249 assigned codes).
_ISO_3166 = (
    "ADAND AEARE AFAFG AGATG AIAIA ALALB AMARM AOAGO AQATA ARARG ASASM ATAUT AUAUS AWABW "
    "AXALA AZAZE BABIH BBBRB BDBGD BEBEL BFBFA BGBGR BHBHR BIBDI BJBEN BLBLM BMBMU BNBRN "
    "BOBOL BQBES BRBRA BSBHS BTBTN BVBVT BWBWA BYBLR BZBLZ CACAN CCCCK CDCOD CFCAF CGCOG "
    "CHCHE CICIV CKCOK CLCHL CMCMR CNCHN COCOL CRCRI CUCUB CVCPV CWCUW CXCXR CYCYP CZCZE "
    "DEDEU DJDJI DKDNK DMDMA DODOM DZDZA ECECU EEEST EGEGY EHESH ERERI ESESP ETETH FIFIN "
    "FJFJI FKFLK FMFSM FOFRO FRFRA GAGAB GBGBR GDGRD GEGEO GFGUF GGGGY GHGHA GIGIB GLGRL "
    "GMGMB GNGIN GPGLP GQGNQ GRGRC GSSGS GTGTM GUGUM GWGNB GYGUY HKHKG HMHMD HNHND HRHRV "
    "HTHTI HUHUN IDIDN IEIRL ILISR IMIMN ININD IOIOT IQIRQ IRIRN ISISL ITITA JEJEY JMJAM "
    "JOJOR JPJPN KEKEN KGKGZ KHKHM KIKIR KMCOM KNKNA KPPRK KRKOR KWKWT KYCYM KZKAZ LALAO "
    "LBLBN LCLCA LILIE LKLKA LRLBR LSLSO LTLTU LULUX LVLVA LYLBY MAMAR MCMCO MDMDA MEMNE "
    "MFMAF MGMDG MHMHL MKMKD MLMLI MMMMR MNMNG MOMAC MPMNP MQMTQ MRMRT MSMSR MTMLT MUMUS "
    "MVMDV MWMWI MXMEX MYMYS MZMOZ NANAM NCNCL NENER NFNFK NGNGA NINIC NLNLD NONOR NPNPL "
    "NRNRU NUNIU NZNZL OMOMN PAPAN PEPER PFPYF PGPNG PHPHL PKPAK PLPOL PMSPM PNPCN PRPRI "
    "PSPSE PTPRT PWPLW PYPRY QAQAT REREU ROROU RSSRB RURUS RWRWA SASAU SBSLB SCSYC SDSDN "
    "SESWE SGSGP SHSHN SISVN SJSJM SKSVK SLSLE SMSMR SNSEN SOSOM SRSUR SSSSD STSTP SVSLV "
    "SXSXM SYSYR SZSWZ TCTCA TDTCD TFATF TGTGO THTHA TJTJK TKTKL TLTLS TMTKM TNTUN TOTON "
    "TRTUR TTTTO TVTUV TWTWN TZTZA UAUKR UGUGA UMUMI USUSA UYURY UZUZB VAVAT VCVCT VEVEN "
    "VGVGB VIVIR VNVNM VUVUT WFWLF WSWSM YEYEM YTMYT ZAZAF ZMZMB ZWZWE"
)
ALPHA2_TO_ALPHA3: Mapping[str, str] = {pair[:2]: pair[2:] for pair in _ISO_3166.split()}
ALPHA3_CODES = frozenset(ALPHA2_TO_ALPHA3.values())

_PASSPORT_NUMBER = re.compile(r"[0-9A-Z]{5,9}")
# E + a letter or digit (no I or O) + 7 digits; G + 8 digits; older D, S and P + 7 digits.
_CHINESE_PASSPORT = re.compile(r"E[0-9A-HJ-NP-Z][0-9]{7}|G[0-9]{8}|[DSP][0-9]{7}")


@dataclass(frozen=True, slots=True)
class Passport:
    country: str  # ISO 3166-1 alpha-3
    number: str


def validate_passport(country: str, number: str) -> Passport:
    """A passport: an ISO country code (alpha-2 or alpha-3) and a plausible number."""
    code = _without_spaces(_nfkc(country)).upper()
    alpha3 = ALPHA2_TO_ALPHA3.get(code) if len(code) == 2 else code
    if alpha3 not in ALPHA3_CODES:
        raise InvalidPassport("not an ISO 3166-1 country code", reason="passport_country")
    canonical = _without_spaces(_nfkc(number)).upper()
    pattern = _CHINESE_PASSPORT if alpha3 == "CHN" else _PASSPORT_NUMBER
    if not pattern.fullmatch(canonical):
        raise InvalidPassport("not a passport number of that country", reason="passport_number")
    return Passport(country=alpha3, number=canonical)


# Age --------------------------------------------------------------------------------------------


def age_on(birth_date: date, day: date) -> int:
    """Full years on ``day``; someone born on 29 Feb turns a year older on 1 Mar in other years."""
    if day < birth_date:
        raise ValueError("day is before the birth date")
    before_birthday = (day.month, day.day) < (birth_date.month, birth_date.day)
    return day.year - birth_date.year - before_birthday


def check_age(birth_date: date, day: date, minimum: int = 18, maximum: int | None = None) -> int:
    """The age on ``day`` if it is within [minimum, maximum]; UnderAge or OverAge otherwise."""
    age = age_on(birth_date, day)
    if age < minimum:
        raise UnderAge(f"{age} is under the minimum age {minimum}", age=age, minimum=minimum)
    if maximum is not None and age > maximum:
        raise OverAge(f"{age} is over the maximum age {maximum}", age=age, maximum=maximum)
    return age


# Full name --------------------------------------------------------------------------------------

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HAS_CJK = re.compile(f"[{_CJK}]")
# After NFKC "．" is ".", and "･" is "・"; all of these separate the parts of a transliterated name.
_NAME_DOTS = re.compile(r"\s*[·•.・‧∙]\s*")
_CHINESE_NAME = re.compile(f"[{_CJK}]+(?:·[{_CJK}]+)*")
_LATIN_PUNCTUATION = frozenset(" -'.")


def _is_latin_letter(char: str) -> bool:
    return char.isalpha() and unicodedata.name(char, "").startswith("LATIN ")


def _is_latin_name(name: str) -> bool:
    if not 2 <= len(name) <= 60 or not _is_latin_letter(name[0]) or name[-1] in "-'":
        return False
    if "--" in name or "''" in name:
        return False
    return all(
        _is_latin_letter(c) or c in _LATIN_PUNCTUATION or unicodedata.category(c) == "Mn"
        for c in name
    )


def validate_full_name(text: str) -> str:
    """A person's name as on their ID: 2-20 Chinese characters, or 2-60 Latin characters."""
    name = " ".join(_nfkc(text).split()).replace("’", "'").replace("ʼ", "'")
    if _HAS_CJK.search(name):
        name = _without_spaces(_NAME_DOTS.sub("·", name))
        if _CHINESE_NAME.fullmatch(name) and 2 <= len(name.replace("·", "")) <= 20:
            return name
        raise InvalidName("a Chinese name is 2 to 20 Chinese characters, parts joined by ·")
    if _is_latin_name(name):
        return name
    raise InvalidName("a name is 2 to 60 letters, spaces, hyphens, apostrophes and periods")


# Bank card --------------------------------------------------------------------------------------


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _card_digits(text: str) -> str:
    digits = re.sub(r"[\s\-]", "", _nfkc(text))
    if not re.fullmatch(r"[0-9]+", digits):
        raise InvalidCardNumber("a card number has only digits", reason="card_format")
    return digits


def normalize_card_number(text: str) -> str:
    """The card number as 16-19 ASCII digits with a valid Luhn check digit."""
    digits = _card_digits(text)
    if not 16 <= len(digits) <= 19:
        raise InvalidCardNumber("a card number has 16 to 19 digits", reason="card_length")
    if not _luhn_valid(digits):
        raise InvalidCardNumber("the card number's check digit is wrong", reason="card_checksum")
    return digits


@dataclass(frozen=True, slots=True)
class Bank:
    code: str
    name_zh: str
    name_en: str


_BIN_COLUMNS = ["bin", "bank_code", "name_zh", "name_en"]


class BankBins:
    """Which bank issued a card, from the card number's BIN (longest matching prefix wins)."""

    def __init__(self, bins: Mapping[str, Bank]) -> None:
        for prefix in bins:
            if not re.fullmatch(r"[0-9]{1,12}", prefix):
                raise ValueError(f"a BIN is 1 to 12 digits, not {prefix!r}")
        self._bins = dict(bins)
        self._lengths = sorted({len(prefix) for prefix in bins}, reverse=True)

    @classmethod
    def load(cls, path: Path | None = None) -> BankBins:
        """Read a BIN table (``bin,bank_code,name_zh,name_en``), by default the shipped one."""
        path = path or Path(__file__).resolve().parents[2] / "config" / "bank_bins.csv"
        bins: dict[str, Bank] = {}
        banks: dict[str, Bank] = {}
        with path.open(encoding="utf-8", newline="") as file:
            reader = csv.DictReader(file)
            if reader.fieldnames != _BIN_COLUMNS:
                raise ValueError(f"{path}: the header must be {','.join(_BIN_COLUMNS)}")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                values = [(row.get(column) or "").strip() for column in _BIN_COLUMNS]
                if None in row or not all(values):
                    raise ValueError(f"{where}: expected 4 non-empty fields")
                prefix, code, name_zh, name_en = values
                bank = banks.setdefault(code, Bank(code, name_zh, name_en))
                if bank != Bank(code, name_zh, name_en):
                    raise ValueError(f"{where}: bank {code} has other names on an earlier line")
                if prefix in bins:
                    raise ValueError(f"{where}: BIN {prefix} is listed twice")
                bins[prefix] = bank
        return cls(bins)

    def __len__(self) -> int:
        return len(self._bins)

    @property
    def banks(self) -> tuple[Bank, ...]:
        """The supported banks, ordered by code."""
        return tuple(sorted(set(self._bins.values()), key=lambda bank: bank.code))

    def lookup(self, card_number: str) -> Bank:
        """The issuing bank; UnsupportedBank when no BIN matches."""
        digits = _card_digits(card_number)
        for length in self._lengths:
            bank = self._bins.get(digits[:length]) if length <= len(digits) else None
            if bank is not None:
                return bank
        raise UnsupportedBank("no supported bank issues this card", bin=digits[:6])


# Masking ----------------------------------------------------------------------------------------

CARD_DOTS = "····"


def _keep_ends(text: str, head: int, tail: int) -> str:
    """Stars in the middle, same length; all stars when the ends would reveal everything."""
    if len(text) <= head + tail:
        return "*" * len(text)
    return text[:head] + "*" * (len(text) - head - tail) + text[len(text) - tail :]


def mask_name(name: str) -> str:
    """张三 -> 张*, 欧阳娜娜 -> 欧***, John Smith -> J*** S****."""
    name = " ".join(name.split())
    if _HAS_CJK.search(name):
        return name[:1] + "".join(c if c == "·" else "*" for c in name[1:])
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in name.split(" "))


def mask_id_number(number: str) -> str:
    """Resident IDs keep the first 3 and last 4 characters; passports the first 1 and last 3."""
    number = _without_spaces(number)
    return _keep_ends(number, 3, 4) if len(number) >= 15 else _keep_ends(number, 1, 3)


def mask_phone(e164: str) -> str:
    """+8613812345678 -> 138****5678; other countries: +44******3456."""
    try:
        number = phonenumbers.parse(e164, "CN")
    except phonenumbers.NumberParseException:
        return "*" * len(e164)
    national = phonenumbers.national_significant_number(number)
    if number.country_code == 86:
        return national[:3] + "****" + national[-4:] if len(national) > 7 else "*" * len(national)
    return f"+{number.country_code}" + _keep_ends(national, 0, 4)


def mask_card(last4: str) -> str:
    """···· 1234 (given a whole card number, only its last four digits are shown)."""
    tail = _without_spaces(last4)[-4:]
    if not re.fullmatch(r"[0-9]{4}", tail):
        raise ValueError("mask_card needs the card's last four digits")
    return f"{CARD_DOTS} {tail}"


def card_label(bank: Bank, last4: str, locale: str = "zh-CN") -> str:
    """招商银行 ···· 1234, or China Merchants Bank ···· 1234 outside Chinese locales."""
    name = bank.name_zh if locale.lower().startswith("zh") else bank.name_en
    return f"{name} {mask_card(last4)}"
