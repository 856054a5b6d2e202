"""The knowledge base: FAQ articles as data (YAML), and the matcher that answers from them.

``KnowledgeBase.load(directory)`` reads every ``*.yaml`` file under the directory (each holds a
list of articles; format in ``knowledge_base/README.md``); ``kb.match(text, locale)`` returns the
best ``Match`` or ``None`` when the question is out of scope; ``kb.reload()`` re-reads the files
and swaps the index in one step, so answers never see a half-built index.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knowledge_base.matcher import LOCALES, Index, Match, has_cjk

log = logging.getLogger(__name__)
DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "articles"
MIN_QUESTIONS = 1


class KnowledgeBaseError(ValueError):
    """An article file is malformed; the message names the file and the article."""


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    category: str
    questions: Mapping[str, tuple[str, ...]]
    answer: Mapping[str, str]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def answer_in(self, locale: str) -> str:
        return self.answer.get(locale) or self.answer.get("zh-CN") or next(
            iter(self.answer.values()))

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(self.extra.get("actions") or ())


class KnowledgeBase:
    def __init__(self, directory: Path, *, min_score: float = 42.0) -> None:
        self.directory = directory
        self.min_score = min_score
        self.articles: dict[str, Article] = {}
        self._index = Index([])

    @classmethod
    def load(cls, directory: Path | str | None = None, **kwargs: Any) -> KnowledgeBase:
        kb = cls(Path(directory) if directory is not None else DEFAULT_DIRECTORY, **kwargs)
        kb.reload()
        return kb

    def reload(self) -> int:
        """Re-read every article file; on a malformed file keep serving the old articles."""
        articles = read_articles(self.directory)
        index = Index(((a.id, locale, q) for a in articles.values()
                       for locale, qs in a.questions.items() for q in qs),
                      ((a.id, locale, text) for a in articles.values()
                       for locale, text in a.answer.items()))
        self.articles, self._index = articles, index
        log.info("knowledge base: %d articles from %s", len(articles), self.directory)
        return len(articles)

    def match(self, text: str, locale: str | None = None) -> Match | None:
        """The best article for ``text`` with a 0-100 score and the next best few, or None."""
        if locale is not None and not locale.startswith(("zh", "en")):
            locale = None
        if locale is not None:
            locale = "en" if locale.startswith("en") else "zh-CN"
        if locale is None:
            locale = "zh-CN" if has_cjk(text) else "en"
        ranked = self._index.search(text, locale)
        if not ranked and locale is not None:  # a Chinese question from an English user
            ranked = self._index.search(text, None)
        if not ranked or ranked[0][1] < self.min_score:
            return None
        return Match(ranked[0][0], ranked[0][1], ranked[1:4])

    def __len__(self) -> int:
        return len(self.articles)


def read_articles(directory: Path) -> dict[str, Article]:
    articles: dict[str, Article] = {}
    files = sorted(directory.rglob("*.yaml"))
    if not files:
        raise KnowledgeBaseError(f"{directory}: no *.yaml article files")
    for path in files:
        try:
            items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        except yaml.YAMLError as exc:
            raise KnowledgeBaseError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(items, list):
            raise KnowledgeBaseError(f"{path}: must hold a list of articles")
        for n, item in enumerate(items, 1):
            article = _article(item, f"{path.name} article {n}")
            if article.id in articles:
                raise KnowledgeBaseError(f"{path.name}: duplicate article id {article.id!r}")
            articles[article.id] = article
    return articles


def _article(item: Any, where: str) -> Article:
    if not isinstance(item, dict):
        raise KnowledgeBaseError(f"{where}: must be a mapping")
    for key in ("id", "category", "questions", "answer"):
        if key not in item:
            raise KnowledgeBaseError(f"{where}: missing {key!r}")
    if not isinstance(item["id"], str) or not item["id"].strip():
        raise KnowledgeBaseError(f"{where}: id must be a non-empty string")
    where = f"{where} ({item['id']})"
    questions, answer = item["questions"], item["answer"]
    if not isinstance(questions, dict) or not isinstance(answer, dict):
        raise KnowledgeBaseError(f"{where}: questions and answer map locale -> text")
    for locale in list(questions) + list(answer):
        if locale not in LOCALES:
            raise KnowledgeBaseError(f"{where}: unknown locale {locale!r}")
    for locale, qs in questions.items():
        if not isinstance(qs, list) or len(qs) < MIN_QUESTIONS or not all(
                isinstance(q, str) and q.strip() for q in qs):
            raise KnowledgeBaseError(f"{where}: questions[{locale}] must list question texts")
    if not answer or not all(isinstance(a, str) and a.strip() for a in answer.values()):
        raise KnowledgeBaseError(f"{where}: every answer must be a non-empty text")
    extra = {k: v for k, v in item.items() if k not in ("id", "category", "questions", "answer")}
    return Article(item["id"], str(item["category"]),
                   {loc: tuple(qs) for loc, qs in questions.items()}, dict(answer), extra)
