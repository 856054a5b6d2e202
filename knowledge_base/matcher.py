"""The FAQ matcher: which knowledge-base article answers a user's question, if any.

Built on rapidfuzz. Text is normalised first (NFKC folds full-width characters, punctuation of
either script is dropped, case folded), then every domain synonym of ``lexicon.toml`` is rewritten
to its canonical form on both sides (取钱/体现 -> 提现, cash out -> withdraw), so the ways users
name one thing share their terms. Chinese has no word spaces, so it is indexed by single
characters and character pairs (a short colloquial question shares few pairs with the variants
but most of its characters); English by words, lightly stemmed, with only function words dropped
(``on``/``off``/``not``/``can`` stay: they tell "turn on" from "turn off") and unknown words mapped
to the closest known word of similar length (typos).

Every term is weighted by its BM25 inverse document frequency over articles, so topical words
decide and common ones count little. Candidates come from an inverted index per locale, so a
question costs what its terms cost, not what the knowledge base costs. An article's score is

    score = 100 * (0.45 * article coverage + 0.30 * variant similarity + 0.25 * fuzzy)

- article coverage: the weighted share of the question's terms found anywhere in the article's
  question variants (the article as one document: different variants may each hold a word),
  plus ``ANSWER`` (0.15) of the share found only in its answer;
- variant similarity: for its best variant, the geometric mean of the weighted share of the
  question found in the variant and of the variant found in the question;
- fuzzy: rapidfuzz's ``partial_ratio`` for Chinese (a short question inside a longer variant),
  ``token_set_ratio`` for English, against that variant, times the share of the question the
  knowledge base knows (a long question around a familiar phrase is not a near-copy of it).

Terms the knowledge base has never seen still weigh in the question's total, so small talk and
other services score low: an unknown word counts like a rare one, an unknown Chinese character
too, but an unknown pair of known characters only a little (new wording, not a new topic). Names
of other providers' products (``[out_of_scope]`` in the lexicon: 花呗, credit card, crypto...)
weigh as ``FOREIGN`` (4) unknown words, unless the knowledge base's own questions use them. The
score shrinks when the matched terms together weigh less than about one rare term (only generic
words in common), and is 0-100; below ``min_score`` ``match`` returns ``None``. A weak best answer
that barely beats the runner-up is also dropped (see ``AMBIGUOUS``).

Speed: the eight articles with the most matched weight are candidates; each gets an upper bound
(its best variant cannot hold more of the question than the whole article; fuzzy is at most 1)
and is scored in full, best bound first, only while it could still reach the best few.
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from rapidfuzz import fuzz, process

LOCALES = ("zh-CN", "en")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[a-z0-9]+")
# Function words only: negations, particles and modal verbs carry meaning and stay.
EN_STOP = frozenset(
    "a an the i me my mine myself you your yours we our us he she it its they them their this "
    "that these those is am are was were be been being do does did doing to of for in at by "
    "with from and or as so than then there here just please hi hello hey thanks thank pls "
    "plz u ur im i'm ive id"
    .split()
)
ZH_STOP = frozenset("的了吗呢吧啊呀么嘛哦哈呗我你您是在和就都请问一下这个那个啥咋怎什如何")
ZH_UNIGRAM = 0.8     # a single character is weaker evidence than a pair
ZH_NEW_PAIR = 0.25   # an unseen pair of known characters: share of the mean term weight
TYPO = 0.8           # a word mapped to a known one counts for this share
COVER, VARIANT, FUZZY = 0.45, 0.30, 0.25
AMBIGUOUS = (50.0, 3.0)  # below this score, a lead smaller than this means no answer
CANDIDATES = 8       # articles scored in full, by coverage
UNSEEN = 1.0         # an unseen word or character, in rare terms (at least UNSEEN_MIN)
UNSEEN_MIN = 2.5
ANSWER = 0.15
ANSWER_DF = False
FOREIGN = 4.0
FUZZY_KNOWN = 1.0
EVIDENCE = 0.8       # matched weight, in rare terms, below which the score shrinks


def normalize(text: str) -> str:
    """Full-width to half-width, lower case, punctuation of any script to spaces."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return " ".join(folded.translate(_PUNCTUATION).split())


class _Punctuation(dict[int, str]):
    """``str.translate`` table: punctuation and symbols of any script become spaces, other
    characters stay (looked up in ``unicodedata`` once per character, then remembered)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        value = " " if unicodedata.category(char).startswith(("P", "S")) else char
        self[code] = value
        return value


_PUNCTUATION = _Punctuation()


LEXICON = Path(__file__).resolve().parent / "lexicon.toml"


class _Synonyms:
    """Rewrites every variant of a lexicon to its canonical form, longest match first: Chinese
    variants anywhere in the text, English ones on whole words only."""

    def __init__(self, canonical: dict[str, str]) -> None:
        self.chinese = {v: t for v, t in canonical.items() if has_cjk(v)}
        self.pattern = re.compile("|".join(
            map(re.escape, sorted(self.chinese, key=len, reverse=True)))) if self.chinese else None
        self.english = {tuple(v.split()): t for v, t in canonical.items() if not has_cjk(v)}
        self.words = max(map(len, self.english), default=0)
        self.first_words = frozenset(v[0] for v in self.english)

    def rewrite(self, text: str) -> str:
        if self.pattern is not None and has_cjk(text):
            text = self.pattern.sub(lambda found: self.chinese[found.group(0)], text)
        if not self.english:
            return text
        words, out, i = text.split(), [], 0
        while i < len(words):
            if words[i] not in self.first_words:
                out.append(words[i])
                i += 1
                continue
            for size in range(min(self.words, len(words) - i), 0, -1):
                target = self.english.get(tuple(words[i:i + size]))
                if target is not None:
                    out.append(target)
                    i += size
                    break
            else:
                out.append(words[i])
                i += 1
        return " ".join(out)


@lru_cache(maxsize=4)
def _synonyms(path: Path) -> _Synonyms:
    """The lexicon at ``path``: variant -> canonical form, both normalised."""
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    table.pop("out_of_scope", None)
    canonical: dict[str, str] = {}
    for entries in table.values():
        for target, variants in entries.items():
            for variant in variants:
                canonical[normalize(variant)] = normalize(target)
    return _Synonyms(canonical)


@lru_cache(maxsize=4)
def _foreign(path: Path) -> tuple[str, ...]:
    """The lexicon's out-of-scope terms, normalised."""
    table = tomllib.loads(path.read_text(encoding="utf-8")).get("out_of_scope", {})
    return tuple(normalize(term) for terms in table.values() for term in terms)


def canonical(text: str, lexicon: Path | None = LEXICON) -> str:
    """Normalised text with every domain synonym rewritten to its canonical form."""
    text = normalize(text)
    if lexicon is None:
        return text
    return _synonyms(lexicon).rewrite(text)


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def _stem(word: str) -> str:
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + keep
    return word


def tokens(text: str) -> list[str]:
    """Index terms of normalised text: Chinese characters and character pairs (function
    characters alone are dropped), English stemmed words without function words."""
    terms: list[str] = []
    for run in _RUN.findall(text):
        if has_cjk(run):
            terms.extend(c for c in run if c not in ZH_STOP)
            terms.extend(run[i:i + 2] for i in range(len(run) - 1)
                         if not (run[i] in ZH_STOP and run[i + 1] in ZH_STOP))
        elif run not in EN_STOP:
            terms.append(_stem(run))
    return terms


@dataclass(frozen=True, slots=True)
class Match:
    article_id: str
    score: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)


@dataclass(slots=True)
class _Entry:
    article_id: str
    locale: str
    text: str
    terms: frozenset[str]
    weight: float = 0.0


@dataclass(slots=True)
class _Article:
    article_id: str
    entries: list[_Entry] = field(default_factory=list)
    terms: set[str] = field(default_factory=set)
    answer_terms: set[str] = field(default_factory=set)


class _LocaleIndex:
    """The articles of one locale, posted by the terms of their questions (``postings``) and
    by the terms only their answer holds (``answer_postings``)."""

    def __init__(self) -> None:
        self.articles: list[_Article] = []
        self.postings: dict[str, list[int]] = {}
        self.answer_postings: dict[str, list[int]] = {}


class Index:
    def __init__(self, variants: Iterable[tuple[str, str, str]],
                 answers: Iterable[tuple[str, str, str]] = (),
                 lexicon: Path | None = LEXICON) -> None:
        self.lexicon = lexicon
        by_locale: dict[str, dict[str, _Article]] = defaultdict(dict)
        for article_id, locale, question in variants:
            text = canonical(question, self.lexicon)
            terms = frozenset(tokens(text))
            if not terms:
                continue
            article = by_locale[locale].setdefault(article_id, _Article(article_id))
            article.entries.append(_Entry(article_id, locale, text, terms))
            article.terms |= terms
        for article_id, locale, answer in answers:
            if article_id in by_locale[locale]:
                found = by_locale[locale][article_id]
                found.answer_terms = set(tokens(canonical(answer, self.lexicon))) - found.terms
        df: dict[str, int] = defaultdict(int)
        for articles in by_locale.values():
            for article in articles.values():
                for term in article.terms | (article.answer_terms if ANSWER_DF else set()):
                    df[term] += 1
        total = max(1, sum(len(a) for a in by_locale.values()))
        self.idf = {t: math.log(1 + (total - n + 0.5) / (n + 0.5)) * _kind(t)
                    for t, n in df.items()}
        self.rare = math.log(1 + (total - 0.5) / 1.5)  # weight of a term seen in one article
        self.unseen = max(self.rare * UNSEEN, UNSEEN_MIN)
        self.mean = sum(self.idf.values()) / len(self.idf) if self.idf else 1.0
        self.locales: dict[str, _LocaleIndex] = {}
        for locale, articles in by_locale.items():
            index = self.locales[locale] = _LocaleIndex()
            postings: dict[str, list[int]] = defaultdict(list)
            answer_postings: dict[str, list[int]] = defaultdict(list)
            for n, article in enumerate(articles.values()):
                index.articles.append(article)
                for entry in article.entries:
                    entry.weight = sum(self.idf[t] for t in entry.terms)
                for term in article.terms:
                    postings[term].append(n)
                for term in article.answer_terms:
                    answer_postings[term].append(n)
            index.postings = dict(postings)
            index.answer_postings = dict(answer_postings)
        self.vocabulary = sorted(t for t in self.idf if not has_cjk(t))
        self.chars = frozenset(t for t in self.idf if len(t) == 1 and has_cjk(t))
        said = "\n".join(e.text for articles in by_locale.values()
                         for a in articles.values() for e in a.entries)
        foreign = [t for t in (_foreign(lexicon) if lexicon else ()) if t and t not in said]
        self.foreign = re.compile("|".join(
            re.escape(t) if has_cjk(t) else rf"(?<![a-z0-9]){re.escape(t)}(?![a-z0-9])"
            for t in sorted(foreign, key=len, reverse=True))) if foreign else None

    def _query_terms(self, text: str) -> tuple[dict[str, float], float]:
        """Known terms of the query with their weights (typos mapped to the nearest known
        word), and the weight of the terms the knowledge base has never seen."""
        found: dict[str, float] = {}
        unknown = 0.0
        for term in dict.fromkeys(tokens(text)):
            if term in self.idf:
                found[term] = self.idf[term]
            elif has_cjk(term):
                if len(term) == 1:
                    unknown += self.unseen * ZH_UNIGRAM
                elif all(c in self.chars or c in ZH_STOP for c in term):
                    unknown += self.mean * ZH_NEW_PAIR
                else:
                    unknown += self.unseen * 0.5
            else:
                near = None
                if len(term) >= 4 and self.vocabulary:
                    near = process.extractOne(
                        term, self.vocabulary, scorer=fuzz.ratio, score_cutoff=80,
                        processor=None)
                if near is not None and abs(len(near[0]) - len(term)) <= 2 \
                        and near[0][0] == term[0]:
                    found.setdefault(near[0], self.idf[near[0]] * TYPO)
                    unknown += self.idf[near[0]] * (1 - TYPO)
                else:
                    unknown += self.unseen
        return found, unknown

    def search(self, question: str, locale: str | None, limit: int = 4) -> list[tuple[str, float]]:
        text = canonical(question, self.lexicon)
        if not text:
            return []
        terms, unknown = self._query_terms(text)
        if not terms:
            return []
        if self.foreign is not None:
            unknown += FOREIGN * self.unseen * len(set(self.foreign.findall(text)))
        known = sum(terms.values())
        total = known + unknown
        chinese = has_cjk(text)
        fuzzy_share = known / total if FUZZY_KNOWN == 1 else (known / total) ** FUZZY_KNOWN
        scorer = fuzz.partial_ratio if chinese else fuzz.token_set_ratio
        best: dict[str, float] = {}
        for name, index in self.locales.items():
            if locale is not None and name != locale:
                continue
            covered: dict[int, float] = defaultdict(float)
            for term, weight in terms.items():
                for n in index.postings.get(term, ()):
                    covered[n] += weight
                for n in index.answer_postings.get(term, ()):
                    covered[n] += weight * ANSWER
            # Bound each candidate's score from above (its best variant holds at most the
            # question's terms it shares with the article; fuzzy is at most 1), then score in
            # full, best bound first, only while a candidate could still reach the best few.
            bounds = []
            for n, shared in sorted(covered.items(), key=lambda item: -item[1])[:CANDIDATES]:
                evidence = min(1.0, shared / (EVIDENCE * self.rare)) if EVIDENCE else 1.0
                cover = COVER * shared / total
                ceiling = cover + VARIANT * math.sqrt(min(1.0, shared / total)) \
                    + FUZZY * fuzzy_share
                bounds.append((100 * evidence * ceiling, cover, evidence, n))
            bounds.sort(key=lambda b: -b[0])
            scores: list[float] = []
            for bound, cover, evidence, n in bounds:
                if len(scores) >= limit and bound < sorted(scores)[-limit]:
                    break
                article = index.articles[n]
                similarity, closest = _closest(article, terms, total)
                fuzzy = scorer(text, closest.text) / 100 * fuzzy_share
                score = 100 * evidence * (cover + VARIANT * similarity + FUZZY * fuzzy)
                scores.append(score)
                if score > best.get(article.article_id, -1):
                    best[article.article_id] = score
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        if len(ranked) > 1 and ranked[0][1] < AMBIGUOUS[0] \
                and ranked[0][1] - ranked[1][1] < AMBIGUOUS[1]:
            ranked[0] = (ranked[0][0], min(ranked[0][1], AMBIGUOUS[0] * 0.7))
        return [(article, round(score, 1)) for article, score in ranked[:limit]]


def _kind(term: str) -> float:
    return ZH_UNIGRAM if len(term) == 1 and has_cjk(term) else 1.0


def _closest(article: _Article, terms: dict[str, float], total: float) -> tuple[float, _Entry]:
    """The article's most similar question variant: the geometric mean of how much of the
    question is in it and of it in the question; ties go to the earlier variant."""
    best, closest = 0.0, article.entries[0]
    for entry in article.entries:
        common = entry.terms.intersection(terms)
        if not common:
            continue
        shared = sum(terms[t] for t in common)
        similarity = math.sqrt((shared / total) * min(1.0, shared / entry.weight))
        if similarity > best:
            best, closest = similarity, entry
    return best, closest
