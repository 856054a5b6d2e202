"""Identity: phones, resident IDs, passports, ages, names, bank cards, BINs and masks.

Example IDs and card numbers are hard-coded values whose check characters were verified by hand;
only the property tests compute check characters, from the published algorithm restated below.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from core.domain.identity import (
    Bank,
    BankBins,
    Passport,
    ResidentId,
    age_on,
    card_label,
    check_age,
    mask_card,
    mask_id_number,
    mask_name,
    mask_phone,
    normalize_card_number,
    parse_phone,
    validate_full_name,
    validate_passport,
    validate_resident_id,
)

TODAY = date(2026, 3, 2)
PROVINCES = [
    str(code)
    for code in (*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55))
] + [str(code) for code in (*range(61, 66), 71, 81, 82, 83)]


def id_reason(text: str, today: date = TODAY) -> str:
    with pytest.raises(InvalidIdNumber) as caught:
        validate_resident_id(text, today)
    return caught.value.params["reason"]


def card_reason(text: str) -> str:
    with pytest.raises(InvalidCardNumber) as caught:
        normalize_card_number(text)
    return caught.value.params["reason"]


# Phone ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "13812345678",
        "+86 138 1234 5678",
        "138-1234-5678",
        "１３８１２３４５６７８",
        "+86 (138) 1234 5678",
        "008613812345678",
        "  13812345678  ",
    ],
)
def test_a_mainland_mobile_number_in_any_usual_spelling_becomes_e164(text: str) -> None:
    assert parse_phone(text) == "+8613812345678"


def test_a_foreign_number_with_a_country_code_is_accepted() -> None:
    assert parse_phone("+44 7911 123456") == "+447911123456"


def test_the_default_region_reads_numbers_without_a_country_code() -> None:
    assert parse_phone("07911 123456", region="GB") == "+447911123456"


@pytest.mark.parametrize(
    "text",
    ["", "1381234567", "12345678901", "phone", "138ABCD5678", "+86 138 1234 5678 ext. 12"],
)
def test_a_phone_number_that_is_not_a_valid_number_is_refused(text: str) -> None:
    with pytest.raises(InvalidPhone):
        parse_phone(text)


# Resident ID ------------------------------------------------------------------------------------


def test_the_standard_example_id_number_is_valid_and_describes_its_holder() -> None:
    resident = validate_resident_id("11010519491231002X", TODAY)
    assert resident == ResidentId(
        number="11010519491231002X", region_code="110105", birth_date=date(1949, 12, 31), sex="F"
    )
    assert resident.province_code == "11"


def test_an_odd_seventeenth_digit_means_male() -> None:
    resident = validate_resident_id("110101199003071233", TODAY)
    assert resident.sex == "M"
    assert resident.birth_date == date(1990, 3, 7)


def test_a_lower_case_x_spaces_and_full_width_characters_are_accepted() -> None:
    full_width = "１１０１０５１９４９１２３１００２Ｘ"
    for text in ["11010519491231002x", " 110105 19491231 002X ", full_width]:
        assert validate_resident_id(text, TODAY).number == "11010519491231002X"


def test_a_hong_kong_residence_permit_number_is_accepted() -> None:
    assert validate_resident_id("810000199001011230", TODAY).province_code == "81"


def test_a_wrong_check_character_is_refused() -> None:
    assert id_reason("110105194912310021") == "id_checksum"
    assert id_reason("110101199003071232") == "id_checksum"


@pytest.mark.parametrize(
    "text",
    ["", "1101051949123100", "1101051949123100200", "11010519491231002Y", "1101051949123X002X"],
)
def test_an_id_number_that_is_not_17_digits_and_a_check_character_is_malformed(text: str) -> None:
    assert id_reason(text) == "id_format"


def test_an_id_number_from_no_province_is_refused_even_with_a_right_check_character() -> None:
    assert id_reason("910105194912310029") == "id_region"


def test_an_impossible_birth_date_is_refused_even_with_a_right_check_character() -> None:
    assert id_reason("110105199002301231") == "id_birth_date"  # 30 Feb 1990


def test_a_birth_date_before_1900_is_refused_even_with_a_right_check_character() -> None:
    assert id_reason("440524188001010014") == "id_birth_date"  # 1 Jan 1880


def test_a_birth_date_after_today_is_refused_and_today_is_a_parameter() -> None:
    assert id_reason("110105202701011238", today=date(2026, 12, 31)) == "id_birth_date"
    born = validate_resident_id("110105202701011238", date(2027, 1, 1)).birth_date
    assert born == date(2027, 1, 1)


def check_char(body: str) -> str:
    """ISO 7064 MOD 11-2, as published in GB 11643."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


id_bodies = st.builds(
    lambda province, county, born, sequence: f"{province}{county}{born:%Y%m%d}{sequence}",
    st.sampled_from(PROVINCES),
    st.text("0123456789", min_size=4, max_size=4),
    st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    st.text("0123456789", min_size=3, max_size=3),
)


@given(id_bodies)
def test_any_body_with_a_real_region_and_date_validates_with_its_check_character(
    body: str,
) -> None:
    resident = validate_resident_id(body + check_char(body), TODAY)
    assert resident.number == body + check_char(body)
    assert resident.birth_date.strftime("%Y%m%d") == body[6:14]
    assert resident.sex == ("M" if int(body[16]) % 2 else "F")


@given(id_bodies, st.sampled_from("0123456789X"))
def test_any_other_check_character_is_refused(body: str, wrong: str) -> None:
    if wrong != check_char(body):
        assert id_reason(body + wrong) == "id_checksum"


# Passport ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["E12345678", "EA1234567", "G12345678", "D1234567", "P1234567"])
def test_chinese_passport_numbers_of_each_series_are_accepted(number: str) -> None:
    assert validate_passport("CN", number) == Passport(country="CHN", number=number)


@pytest.mark.parametrize(
    "number", ["E1234567", "EI1234567", "EO1234567", "G1234567A", "X12345678", "123456789"]
)
def test_a_chinese_passport_number_outside_the_series_is_refused(number: str) -> None:
    with pytest.raises(InvalidPassport):
        validate_passport("CHN", number)


def test_country_codes_become_alpha_3_and_numbers_upper_case() -> None:
    assert validate_passport("us", " 123456789 ") == Passport("USA", "123456789")
    assert validate_passport("gbr", "ab12345") == Passport("GBR", "AB12345")
    assert validate_passport("HK", "K12345678").country == "HKG"
    assert validate_passport("tw", "312345678").country == "TWN"


@pytest.mark.parametrize("country", ["", "XX", "ZZZ", "CHINA", "C"])
def test_an_unknown_country_code_is_refused(country: str) -> None:
    with pytest.raises(InvalidPassport) as caught:
        validate_passport(country, "123456789")
    assert caught.value.params["reason"] == "passport_country"


@pytest.mark.parametrize("number", ["A123", "1234567890", "AB-12345", "AB 12_345", ""])
def test_a_passport_number_must_be_5_to_9_letters_or_digits(number: str) -> None:
    with pytest.raises(InvalidPassport) as caught:
        validate_passport("USA", number)
    assert caught.value.params["reason"] == "passport_number"


# Age --------------------------------------------------------------------------------------------


def test_age_counts_full_years() -> None:
    born = date(2000, 6, 15)
    assert age_on(born, date(2018, 6, 14)) == 17
    assert age_on(born, date(2018, 6, 15)) == 18
    assert age_on(born, born) == 0


def test_a_leap_day_birthday_is_reached_on_1_march_in_other_years() -> None:
    born = date(2004, 2, 29)
    assert age_on(born, date(2022, 2, 28)) == 17
    assert age_on(born, date(2022, 3, 1)) == 18
    assert age_on(born, date(2024, 2, 28)) == 19
    assert age_on(born, date(2024, 2, 29)) == 20


def test_age_is_undefined_before_birth() -> None:
    with pytest.raises(ValueError):
        age_on(date(2000, 1, 2), date(2000, 1, 1))


def test_check_age_accepts_someone_on_their_eighteenth_birthday() -> None:
    assert check_age(date(2008, 3, 2), TODAY) == 18


def test_check_age_refuses_a_minor_and_says_by_how_much() -> None:
    with pytest.raises(UnderAge) as caught:
        check_age(date(2008, 3, 3), TODAY)
    assert caught.value.params == {"age": 17, "minimum": 18}


def test_check_age_refuses_someone_over_the_maximum() -> None:
    assert check_age(date(1956, 3, 3), TODAY, maximum=69) == 69
    with pytest.raises(OverAge) as caught:
        check_age(date(1956, 3, 2), TODAY, minimum=18, maximum=69)
    assert caught.value.params == {"age": 70, "maximum": 69}


# Full name --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("张三", "张三"),
        ("  欧阳 娜娜 ", "欧阳娜娜"),
        ("买买提·艾力", "买买提·艾力"),
        ("买买提•艾力", "买买提·艾力"),
        ("买买提．艾力", "买买提·艾力"),
        ("买买提 · 艾力", "买买提·艾力"),
        ("𠇔三", "𠇔三"),
        ("John Smith", "John Smith"),
        ("  John    Smith ", "John Smith"),
        ("José Álvarez-O'Neil", "José Álvarez-O'Neil"),
        ("Mary-Jane O’Brien Jr.", "Mary-Jane O'Brien Jr."),
        ("Ｊｏｈｎ Ｓｍｉｔｈ", "John Smith"),
    ],
)
def test_a_valid_name_is_returned_trimmed_and_normalised(text: str, expected: str) -> None:
    assert validate_full_name(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "张",
        "张" * 21,
        "·张三",
        "张三·",
        "张··三",
        "张三John",
        "张三3",
        "J",
        "John2",
        "John 😀",
        "Иван Петров",
        "-John",
        "John-",
        "Jo--hn",
        "A" * 61,
    ],
)
def test_an_invalid_name_is_refused(text: str) -> None:
    with pytest.raises(InvalidName):
        validate_full_name(text)


def test_a_chinese_name_may_have_twenty_characters_not_counting_the_dots() -> None:
    assert validate_full_name("张" * 20) == "张" * 20
    name = "阿卜杜热合曼阿卜杜·热西提阿卜杜拉艾力"
    assert validate_full_name(name) == name


# Card number ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111111111111111", "4111111111111111"),
        ("4111 1111 1111 1111", "4111111111111111"),
        ("6225-8801-2345-6783", "6225880123456783"),
        ("６２２２０２１２３４５６７８９０１２８", "6222021234567890128"),
    ],
)
def test_a_luhn_valid_card_number_is_normalised_to_digits(text: str, expected: str) -> None:
    assert normalize_card_number(text) == expected


def test_a_card_number_with_other_characters_is_malformed() -> None:
    for text in ["", "4111-1111-1111-111a", "4111.1111.1111.1111", "٤١١١١١١١١١١١١١١١"]:
        assert card_reason(text) == "card_format"


def test_a_card_number_must_have_16_to_19_digits() -> None:
    assert card_reason("378282246310005") == "card_length"  # a Luhn-valid 15-digit Amex
    assert card_reason("41111111111111111111") == "card_length"


def test_a_card_number_with_a_wrong_check_digit_is_refused() -> None:
    assert card_reason("6222021234567890") == "card_checksum"
    assert card_reason("4111111111111112") == "card_checksum"


@given(
    st.sampled_from(["4111111111111111", "6225880123456783", "6222021234567890128"]),
    st.data(),
)
def test_changing_any_single_digit_breaks_the_check(valid: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(valid) - 1))
    digit = data.draw(st.sampled_from("0123456789").filter(lambda d: d != valid[position]))
    assert card_reason(valid[:position] + digit + valid[position + 1 :]) == "card_checksum"


# Bank BINs --------------------------------------------------------------------------------------

UNIONPAY = Bank("UP", "银联", "UnionPay")
CMB = Bank("CMB", "招商银行", "China Merchants Bank")
OTHER = Bank("OTHER", "其他银行", "Other Bank")


def test_the_longest_matching_bin_wins() -> None:
    bins = BankBins({"62": UNIONPAY, "6225": OTHER, "622588": CMB})
    assert bins.lookup("6225880123456783") == CMB
    assert bins.lookup("6225000000000000") == OTHER
    assert bins.lookup("6299000000000000") == UNIONPAY


def test_a_card_no_bin_matches_is_unsupported_and_only_its_bin_is_reported() -> None:
    with pytest.raises(UnsupportedBank) as caught:
        BankBins({"622588": CMB}).lookup("4111 1111 1111 1111")
    assert caught.value.params == {"bin": "411111"}


def test_a_bin_table_refuses_prefixes_that_are_not_digits() -> None:
    with pytest.raises(ValueError):
        BankBins({"62x": CMB})


@pytest.mark.parametrize(
    ("card", "code"),
    [
        ("6222021234567890128", "ICBC"),
        ("6217001210024455", "CCB"),
        ("6228480000000000000", "ABC"),
        ("6217850000000000000", "BOC"),
        ("6222600000000000", "BOCOM"),
        ("6225880123456783", "CMB"),
        ("6217990000000000000", "PSBC"),
        ("6226900000000000", "CITIC"),
        ("6226630000000000", "CEB"),
        ("6226220000000000", "CMBC"),
        ("6225210000000000", "SPDB"),
        ("622909000000000000", "CIB"),
        ("6230580000000000000", "PAB"),
        ("6226320000000000", "HXB"),
        ("6225680000000000000", "CGB"),
        ("1030000000000000000", "ABC"),
    ],
)
def test_the_shipped_table_knows_the_major_banks_debit_cards(card: str, code: str) -> None:
    assert BankBins.load().lookup(card).code == code


def test_the_shipped_table_names_fifteen_banks_in_chinese_and_english() -> None:
    bins = BankBins.load()
    assert len(bins.banks) == 15
    assert len(bins) > 150
    assert all(bank.name_zh.endswith("银行") and bank.name_en for bank in bins.banks)


def write_table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bins.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_table_file_is_read_from_the_given_path(tmp_path: Path) -> None:
    row = "622588,CMB,招商银行,China Merchants Bank"
    path = write_table(tmp_path, f"bin,bank_code,name_zh,name_en\n{row}\n")
    assert BankBins.load(path).lookup("6225880123456783") == CMB


@pytest.mark.parametrize(
    "body",
    [
        "bin,bank,name_zh,name_en\n622588,CMB,招商银行,CMB\n",
        "bin,bank_code,name_zh,name_en\n622588,CMB,招商银行\n",
        "bin,bank_code,name_zh,name_en\n622588,CMB,招商银行,CMB,extra\n",
        "bin,bank_code,name_zh,name_en\n622588,CMB,招商银行,CMB\n622588,CMB,招商银行,CMB\n",
        "bin,bank_code,name_zh,name_en\n622588,CMB,招商银行,CMB\n621483,CMB,招行,CMB\n",
        "bin,bank_code,name_zh,name_en\n6225x8,CMB,招商银行,CMB\n",
    ],
    ids=["header", "short row", "long row", "duplicate bin", "renamed bank", "bad bin"],
)
def test_a_malformed_table_file_is_refused(tmp_path: Path, body: str) -> None:
    with pytest.raises(ValueError):
        BankBins.load(write_table(tmp_path, body))


# Masks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("欧阳娜娜", "欧***"),
        ("买买提·艾力", "买**·**"),
        ("John Smith", "J*** S****"),
        ("", ""),
    ],
)
def test_a_name_shows_only_its_first_letters(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_an_id_number_shows_its_first_three_and_last_four_characters() -> None:
    assert mask_id_number("11010519900101123X") == "110***********123X"


def test_a_passport_number_shows_its_first_and_last_three_characters() -> None:
    assert mask_id_number("E12345678") == "E*****678"
    assert mask_id_number("1234") == "****"


def test_a_mainland_phone_shows_its_first_three_and_last_four_digits() -> None:
    assert mask_phone("+8613812345678") == "138****5678"


def test_a_foreign_phone_shows_its_country_code_and_last_four_digits() -> None:
    assert mask_phone("+447911123456") == "+44******3456"


def test_masking_something_that_is_not_a_phone_number_hides_it_all() -> None:
    assert mask_phone("call me") == "*******"


def test_a_card_shows_only_its_last_four_digits() -> None:
    assert mask_card("1234") == "···· 1234"
    assert mask_card("6225 8801 2345 6783") == "···· 6783"
    with pytest.raises(ValueError):
        mask_card("12a4")


def test_a_card_label_names_the_bank_in_the_users_language() -> None:
    assert card_label(CMB, "1234") == "招商银行 ···· 1234"
    assert card_label(CMB, "1234", locale="en") == "China Merchants Bank ···· 1234"
