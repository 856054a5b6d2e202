"""Settings: defaults, a TOML file, ``P2P_*`` variables, and errors that name the setting to fix.

The autouse fixture in ``tests/conftest.py`` clears ``P2P_*`` variables and runs each test in its
own empty working directory, so ``./p2p.toml`` and ``var/`` below are per test.
"""

from __future__ import annotations

import base64
import logging
import stat
import tomllib
import traceback
from decimal import ROUND_HALF_UP
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.secrets import SECRETS_FILE, ensure_secrets
from config.settings import ConfigError, Settings, decode_data_key, load_settings

DATA_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode("ascii")
SECRET_KEY = "a-secret-key-that-is-long-enough-0123456789"
POSTGRES_URL = "postgresql+asyncpg://desk@db.internal/p2p"


def write_toml(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def config_error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    return str(caught.value)


# Defaults ----------------------------------------------------------------------------------


def test_defaults_run_in_shanghai_in_chinese_on_sqlite_under_the_data_dir() -> None:
    settings = load_settings()
    assert settings.timezone == "Asia/Shanghai"
    assert settings.tz == ZoneInfo("Asia/Shanghai")
    assert settings.locale == "zh-CN"
    assert settings.data_dir == Path("var")
    assert settings.db_url == "sqlite+aiosqlite:///var/p2p.db"
    assert settings.is_sqlite


def test_defaults_keep_money_in_yuan_with_two_decimals_rounded_half_up() -> None:
    settings = load_settings()
    assert (settings.money.currency, settings.money.scale) == ("CNY", 2)
    assert settings.rounding_mode == ROUND_HALF_UP


def test_defaults_serve_http_locally_and_leave_secrets_unset() -> None:
    settings = load_settings()
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert settings.secret_key is None
    assert settings.data_key is None


def test_the_sqlite_database_follows_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("P2P_DATA_DIR", str(tmp_path / "state"))
    settings = load_settings()
    assert settings.db_url == f"sqlite+aiosqlite:///{tmp_path / 'state' / 'p2p.db'}"


def test_an_explicit_database_url_replaces_the_embedded_sqlite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2P_DATABASE_URL", POSTGRES_URL)
    settings = load_settings()
    assert settings.db_url == POSTGRES_URL
    assert not settings.is_sqlite


# Environment -------------------------------------------------------------------------------


def test_an_environment_variable_overrides_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2P_HTTP_PORT", "9000")
    assert load_settings().http_port == 9000


def test_a_double_underscore_variable_overrides_one_setting_of_a_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2P_MONEY__SCALE", "3")
    money = load_settings().money
    assert money.scale == 3
    assert money.currency == "CNY"


def test_keyword_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2P_HTTP_PORT", "9000")
    assert load_settings(http_port=9001).http_port == 9001


# TOML file ---------------------------------------------------------------------------------


def test_settings_are_read_from_the_file_named_by_p2p_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_toml(
        tmp_path / "etc" / "desk.toml",
        'http_port = 9100\nlocale = "en"\n[money]\nscale = 4\n',
    )
    monkeypatch.setenv("P2P_CONFIG_FILE", str(path))
    settings = load_settings()
    assert (settings.http_port, settings.locale, settings.money.scale) == (9100, "en", 4)


def test_settings_are_read_from_p2p_toml_in_the_working_directory(tmp_path: Path) -> None:
    write_toml(tmp_path / "p2p.toml", 'timezone = "Asia/Tokyo"\n')
    assert load_settings().timezone == "Asia/Tokyo"


def test_p2p_config_file_is_used_instead_of_p2p_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_toml(tmp_path / "p2p.toml", "http_port = 9100\n")
    path = write_toml(tmp_path / "other.toml", "http_port = 9200\n")
    monkeypatch.setenv("P2P_CONFIG_FILE", str(path))
    assert load_settings().http_port == 9200


def test_the_environment_beats_the_toml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_toml(tmp_path / "p2p.toml", 'http_port = 9100\nlocale = "en"\n')
    monkeypatch.setenv("P2P_HTTP_PORT", "9300")
    settings = load_settings()
    assert settings.http_port == 9300
    assert settings.locale == "en"


def test_a_nested_variable_overrides_one_value_and_keeps_the_rest_of_the_toml_group(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_toml(tmp_path / "p2p.toml", '[money]\ncurrency = "USD"\nscale = 2\n')
    monkeypatch.setenv("P2P_MONEY__SCALE", "3")
    money = load_settings().money
    assert (money.currency, money.scale) == ("USD", 3)


def test_a_missing_p2p_config_file_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("P2P_CONFIG_FILE", str(tmp_path / "nowhere.toml"))
    assert "P2P_CONFIG_FILE" in config_error()


# Wrong values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("P2P_HTTP_PORT", "70000"),
        ("P2P_HTTP_PORT", "0"),
        ("P2P_HTTP_PORT", "eighty"),
        ("P2P_TIMEZONE", "Mars/Olympus"),
        ("P2P_TIMEZONE", "../../etc/passwd"),
        ("P2P_LOCALE", "fr"),
        ("P2P_DATA_KEY", "not a key"),
        ("P2P_DATA_KEY", base64.urlsafe_b64encode(bytes(16)).decode("ascii")),
        ("P2P_SECRET_KEY", "too-short"),
        ("P2P_DATABASE_URL", "mysql://desk@db/p2p"),
        ("P2P_DATABASE_URL", "sqlite:///p2p.db"),
        ("P2P_DATABASE_URL", "postgresql://desk@db/p2p"),
        ("P2P_MONEY__SCALE", "9"),
        ("P2P_MONEY__CURRENCY", "yuan"),
        ("P2P_MONEY__ROUNDING", "ROUND_SOMETIMES"),
        ("P2P_BATCHING__MAX_BATCH", "0"),
    ],
)
def test_a_wrong_value_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert variable in config_error()


def test_a_wrong_value_in_the_toml_file_names_the_setting(tmp_path: Path) -> None:
    write_toml(tmp_path / "p2p.toml", "http_port = 70000\n")
    assert "http_port" in config_error()


def test_an_unknown_key_in_the_toml_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    write_toml(tmp_path / "p2p.toml", "htp_port = 9000\n")
    assert "htp_port" in config_error()


def test_an_unknown_key_in_a_toml_group_is_a_config_error_naming_it(tmp_path: Path) -> None:
    write_toml(tmp_path / "p2p.toml", '[money]\ncurrecny = "USD"\n')
    assert "P2P_MONEY__CURRECNY" in config_error()


def test_an_unknown_variable_in_a_group_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2P_MONEY__SCAEL", "3")
    assert "P2P_MONEY__SCAEL" in config_error()


def test_an_unknown_keyword_is_a_config_error_naming_it() -> None:
    assert "P2P_PORT" in config_error(port=9000)


def test_every_wrong_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2P_HTTP_PORT", "70000")
    monkeypatch.setenv("P2P_TIMEZONE", "Mars/Olympus")
    message = config_error()
    assert "P2P_HTTP_PORT" in message
    assert "P2P_TIMEZONE" in message


def test_a_rejected_secret_is_never_shown_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2P_SECRET_KEY", "hunter2-hunter2")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    shown = "".join(traceback.format_exception(caught.value))
    assert "P2P_SECRET_KEY" in shown
    assert "hunter2" not in shown


def test_the_data_key_decodes_to_32_bytes() -> None:
    assert decode_data_key(DATA_KEY) == bytes(range(32))


# Secrets -----------------------------------------------------------------------------------


def stored_secrets(data_dir: Path) -> dict[str, str]:
    with (data_dir / SECRETS_FILE).open("rb") as fh:
        return tomllib.load(fh)


def test_missing_secrets_are_generated_into_the_data_dir_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings()
    with caplog.at_level(logging.WARNING, logger="config.secrets"):
        ready = ensure_secrets(settings)
    secret_key = ready.secret_key.get_secret_value()
    data_key = ready.data_key.get_secret_value()
    assert len(secret_key) >= 32
    assert len(decode_data_key(data_key)) == 32
    assert stored_secrets(Path("var")) == {"secret_key": secret_key, "data_key": data_key}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(Path("var") / SECRETS_FILE) in warnings[0].getMessage()


def test_generated_secrets_are_reused_on_the_next_start_without_a_new_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = ensure_secrets(load_settings())
    file_before = (Path("var") / SECRETS_FILE).read_bytes()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="config.secrets"):
        second = ensure_secrets(load_settings())
    assert second.secret_key == first.secret_key
    assert second.data_key == first.data_key
    assert (Path("var") / SECRETS_FILE).read_bytes() == file_before
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_each_data_dir_gets_its_own_generated_secrets(tmp_path: Path) -> None:
    one = ensure_secrets(load_settings(data_dir=tmp_path / "one"))
    two = ensure_secrets(load_settings(data_dir=tmp_path / "two"))
    assert one.data_key != two.data_key
    assert one.secret_key != two.secret_key


def test_the_secrets_file_is_readable_by_its_owner_only() -> None:
    ensure_secrets(load_settings())
    mode = (Path("var") / SECRETS_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_a_secret_missing_from_the_file_is_added_and_the_stored_one_is_kept() -> None:
    write_toml(Path("var") / SECRETS_FILE, f'secret_key = "{SECRET_KEY}"\n')
    ready = ensure_secrets(load_settings())
    assert ready.secret_key.get_secret_value() == SECRET_KEY
    assert stored_secrets(Path("var"))["data_key"] == ready.data_key.get_secret_value()


def test_secrets_given_in_the_environment_are_used_and_nothing_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2P_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("P2P_DATA_KEY", DATA_KEY)
    ready = ensure_secrets(load_settings())
    assert ready.secret_key.get_secret_value() == SECRET_KEY
    assert ready.data_key.get_secret_value() == DATA_KEY
    assert not (Path("var") / SECRETS_FILE).exists()


def test_ensuring_secrets_keeps_every_other_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2P_MONEY__SCALE", "3")
    ready = ensure_secrets(load_settings(http_port=9001, locale="en"))
    assert isinstance(ready, Settings)
    assert (ready.http_port, ready.locale, ready.money.scale) == (9001, "en", 3)


def test_postgresql_without_secrets_is_a_config_error_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2P_DATABASE_URL", POSTGRES_URL)
    with pytest.raises(ConfigError) as caught:
        ensure_secrets(load_settings())
    assert "P2P_SECRET_KEY" in str(caught.value)
    assert "P2P_DATA_KEY" in str(caught.value)
    assert not (Path("var") / SECRETS_FILE).exists()


def test_postgresql_with_only_the_secret_key_names_the_missing_data_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2P_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("P2P_SECRET_KEY", SECRET_KEY)
    with pytest.raises(ConfigError) as caught:
        ensure_secrets(load_settings())
    assert "P2P_DATA_KEY" in str(caught.value)
    assert "P2P_SECRET_KEY" not in str(caught.value)


def test_postgresql_with_both_secrets_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2P_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("P2P_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("P2P_DATA_KEY", DATA_KEY)
    ready = ensure_secrets(load_settings())
    assert ready.data_key.get_secret_value() == DATA_KEY
    assert not (Path("var") / SECRETS_FILE).exists()


def test_a_misspelled_variable_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2P_HTP_PORT", "9000")
    with pytest.raises(ConfigError, match="P2P_HTP_PORT"):
        load_settings()


def test_a_malformed_toml_file_is_a_config_error(tmp_path: Path) -> None:
    write_toml(tmp_path / "p2p.toml", "http_port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_a_corrupt_stored_data_key_is_a_config_error_and_nothing_is_rewritten(
    tmp_path: Path,
) -> None:
    (tmp_path / SECRETS_FILE).write_text('data_key = "short"\n')
    with pytest.raises(ConfigError, match="data_key"):
        ensure_secrets(Settings(data_dir=tmp_path))
    assert (tmp_path / SECRETS_FILE).read_text() == 'data_key = "short"\n'


def test_only_the_generated_secret_is_named_in_the_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / SECRETS_FILE).write_text('secret_key = "' + "k" * 40 + '"\n')
    (tmp_path / SECRETS_FILE).chmod(0o644)
    with caplog.at_level(logging.WARNING):
        ensure_secrets(Settings(data_dir=tmp_path))
    assert "generated data_key into" in caplog.text
    assert stat.S_IMODE((tmp_path / SECRETS_FILE).stat().st_mode) == 0o600
