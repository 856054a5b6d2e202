"""What a user reads when a business rule stops them: one zh-CN and one en message per error code.

The catalogs are ``locales/errors.<locale>.toml``, keyed by ``DomainError.code``. A value is

- a template: a string with ``str.format`` named fields (``"请 {seconds} 秒后再获取验证码。"``),
  or a list of templates, the first whose fields are all in ``exc.params`` being used; or
- a table keyed by ``params["reason"]`` plus a ``default``, for errors that carry a reason. An
  absent or unknown reason, or a reason whose templates need params the error lacks, falls back
  to ``default``.

The last template a lookup can reach has no fields, so an error raised without its params still
reads well instead of crashing. ``load`` refuses catalogs whose locales differ in codes, reasons or
fields, and templates with anything but plain ``{name}`` fields. An error without its own entry
gets the message of its nearest ancestor that has one; ``DomainError`` always has one.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.domain.errors import DomainError

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
CATALOG_DIR = Path(__file__).with_name("locales")

Chain = tuple[str, ...]
Entry = Chain | Mapping[str, Chain]

_FORMATTER = string.Formatter()


class CatalogError(ValueError):
    """A message catalog that is missing, malformed or out of step with the other locale."""


def normalize_locale(locale: str | None) -> str:
    """English for any "en..." tag ("en-US", "en_GB"); Chinese (zh-CN) for everything else."""
    return "en" if (locale or "").strip().lower().startswith("en") else DEFAULT_LOCALE


class Messages:
    """The loaded catalogs; build one with ``load`` at start-up and pass it where it is needed."""

    def __init__(self, catalogs: Mapping[str, Mapping[str, Entry]]) -> None:
        self._catalogs = MappingProxyType(dict(catalogs))

    @classmethod
    def load(cls, directory: Path | None = None) -> Messages:
        folder = CATALOG_DIR if directory is None else directory
        catalogs = {locale: _read(folder / f"errors.{locale}.toml") for locale in LOCALES}
        _check_in_step(catalogs)
        return cls(catalogs)

    def catalog(self, locale: str | None) -> Mapping[str, Entry]:
        """The entries of one locale, by error code (read-only)."""
        return self._catalogs[normalize_locale(locale)]

    def error(self, exc: DomainError, locale: str | None) -> str:
        """The message for ``exc`` in ``locale``, filled in with the params it carries."""
        catalog = self.catalog(locale)
        params: Mapping[str, Any] = getattr(exc, "params", None) or {}
        for klass in type(exc).__mro__:
            code = vars(klass).get("code")
            if isinstance(code, str) and code in catalog:
                return _render(catalog[code], params)
        return _render(catalog[DomainError.code], params)


def user_message(exc: DomainError, locale: str | None) -> str:
    """``Messages.error`` on the default catalogs, which are read on the first call."""
    return _default_messages().error(exc, locale)


@cache
def _default_messages() -> Messages:
    return Messages.load()


def _render(entry: Entry, params: Mapping[str, Any]) -> str:
    if isinstance(entry, Mapping):
        reason = params.get("reason")
        chain = (entry.get(reason, ()) if isinstance(reason, str) else ()) + entry["default"]
    else:
        chain = entry
    # The last template has no fields (checked at load), so one always fits.
    return next(t.format_map(params) for t in chain if params.keys() >= _fields(t))


# Loading and checking ------------------------------------------------------------------------


def _read(path: Path) -> dict[str, Entry]:
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    entries = {code: _entry(value, f"{path.name}: {code}") for code, value in raw.items()}
    if DomainError.code not in entries:
        raise CatalogError(f"{path.name}: needs {DomainError.code!r}, the message of last resort")
    return entries


def _entry(value: object, where: str) -> Entry:
    if not isinstance(value, dict):
        return _chain(value, where, last_needs_no_fields=True)
    if "default" not in value:
        raise CatalogError(f"{where}: a table of reasons needs a 'default'")
    return MappingProxyType({
        reason: _chain(chain, f"{where}.{reason}", last_needs_no_fields=reason == "default")
        for reason, chain in value.items()
    })


def _chain(value: object, where: str, *, last_needs_no_fields: bool) -> Chain:
    chain = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list) else ()
    if not chain or not all(isinstance(t, str) and t.strip() for t in chain):
        raise CatalogError(f"{where}: expected a message or a list of messages")
    for template in chain:
        _fields(template, where)
    if last_needs_no_fields and _fields(chain[-1]):
        raise CatalogError(f"{where}: end with a message without {{fields}}, for errors raised "
                           "without params")
    return chain


@cache
def _fields(template: str, where: str = "") -> frozenset[str]:
    """The named fields of a template; anything but plain ``{name}`` fields is refused."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise CatalogError(f"{where}: {template!r}: {exc}") from None
    names = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise CatalogError(f"{where}: {template!r}: use plain named fields like {{seconds}}")
        names.add(name)
    return frozenset(names)


def _check_in_step(catalogs: Mapping[str, Mapping[str, Entry]]) -> None:
    """Every locale has the same codes, reasons and fields as the first one."""
    (first, reference), *others = catalogs.items()
    for locale, catalog in others:
        if catalog.keys() != reference.keys():
            raise CatalogError(
                f"codes only in {first}: {sorted(reference.keys() - catalog.keys())}; "
                f"only in {locale}: {sorted(catalog.keys() - reference.keys())}")
        for code, entry in reference.items():
            if _shape(entry) != _shape(catalog[code]):
                raise CatalogError(
                    f"{code}: {first} and {locale} differ in reasons or fields: "
                    f"{_describe(entry)} vs {_describe(catalog[code])}")


def _shape(entry: Entry) -> object:
    if isinstance(entry, Mapping):
        return {reason: _shape(chain) for reason, chain in entry.items()}
    return tuple(_fields(t) for t in entry)


def _describe(entry: Entry) -> str:
    if isinstance(entry, Mapping):
        return "{" + ", ".join(f"{r}: {_describe(c)}" for r, c in sorted(entry.items())) + "}"
    return "[" + ", ".join(str(sorted(_fields(t))) for t in entry) + "]"
