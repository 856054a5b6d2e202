"""Every text a user sees, from the zh-CN and en catalogs (``bots/dialog/locales/<locale>/*.toml``,
one file per part of the product; the two locales must have exactly the same keys).

Flow code never holds a user-facing literal: it asks ``catalog.text(locale, key, **params)``.
Domain errors render through ``core.messages`` (their own catalogs), in the same locale.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from string import Formatter
from typing import Any

from core.domain.errors import DomainError
from core.messages import user_message

LOCALES = ("zh-CN", "en")
DIRECTORY = Path(__file__).resolve().parent / "locales"


def normalize_locale(hint: str | None, default: str = "zh-CN") -> str:
    if not hint:
        return default
    return "en" if hint.lower().startswith("en") else "zh-CN"


class Catalog:
    def __init__(self, texts: dict[str, dict[str, str]]) -> None:
        self.texts = texts

    @classmethod
    def load(cls, directory: Path = DIRECTORY) -> Catalog:
        texts: dict[str, dict[str, str]] = {}
        for locale in LOCALES:
            table: dict[str, str] = {}
            for path in sorted((directory / locale).glob("*.toml")):
                with path.open("rb") as fh:
                    for key, value in tomllib.load(fh).items():
                        if key in table:
                            raise ValueError(f"{path}: key {key!r} is defined twice")
                        table[key] = str(value)
            texts[locale] = table
        keys = [set(t) for t in texts.values()]
        if keys[0] != keys[1]:
            raise ValueError(f"catalogs differ in keys: {sorted(keys[0] ^ keys[1])}")
        for table in texts.values():
            for template in table.values():
                list(Formatter().parse(template))  # raises on a malformed template
        return cls(texts)

    def text(self, locale: str, key: str, **params: Any) -> str:
        return self.texts[normalize_locale(locale)][key].format(**params)

    def error(self, locale: str, exc: DomainError) -> str:
        return user_message(exc, normalize_locale(locale))
