"""The FAQ matcher: which knowledge-base article answers a user's question, if any.

Built on rapidfuzz. Text is normalised first (NFKC folds full-width characters, punctuation of
either script is dropped, case folded). Chinese has no word spaces, so it is indexed by character
bigrams (and single characters for very short questions); English by words, lightly stemmed, with
stop words dropped and unknown words mapped to the closest known word (typos). Candidates come
from an inverted index, so a question costs what its words cost, not what the knowledge base
costs; each candidate question variant gets

    score = 100 * (0.65 * weighted overlap + 0.35 * fuzzy similarity)

where the overlap weighs shared terms by inverse document frequency (rare, topical words count,
common ones little) and the fuzzy part is rapidfuzz's token-set ratio (word order, repeats). An
article scores its best variant. Below ``min_score`` - or with no topical word in common - the
question is out of scope and ``match`` returns ``None``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

LOCALES = ("zh-CN", "en")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[a-z0-9]+")
EN_STOP = frozenset(
    "a about after again all am an and any are as at be been before being but by can could did "
    "do does doing for from get got had has have having he her here hers him his how i if in "
    "into is it its just me might mine more most must my no not now of off on once only or our "
    "out own please same she should so some such than that the their them then there these they "
    "this those through to too under until up very was we were what when where which while who "
    "whom why will with would you your yours yourself hi hello thanks thank want wanna need "
    "tell know let like also still "
    .split()
)
ZH_STOP = frozenset("的了吗呢吧啊呀么我你您是在有和就都要会能可以怎么什么如何请问一下这个那个")


def normalize(text: str) -> str:
    """Full-width to half-width, lower case, punctuation of any script to spaces."""
    folded = unicodedata.normalize("NFKC", text).lower()
    kept = [ch if not unicodedata.category(ch).startswith(("P", "S")) else " " for ch in folded]
    return re.sub(r"\s+", " ", "".join(kept)).strip()


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def _stem(word: str) -> str:
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + keep
    return word


def tokens(text: str) -> list[str]:
    """Index terms of normalised text: Chinese character bigrams, English stemmed words."""
    terms: list[str] = []
    for run in re.findall(r"[\u3400-\u9fff\uf900-\ufaff]+|[a-z0-9]+", text):
        if has_cjk(run):
            chars = [c for c in run if c not in ZH_STOP] if len(run) > 2 else list(run)
            joined = "".join(chars) or run
            if len(joined) == 1:
                terms.append(joined)
            terms.extend(joined[i:i + 2] for i in range(len(joined) - 1))
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
    terms: dict[str, int]


class Index:
    """An immutable search index over question variants (rebuilt on reload, then swapped)."""

    def __init__(self, variants: Iterable[tuple[str, str, str]]) -> None:
        self.entries: list[_Entry] = []
        postings: dict[str, set[int]] = defaultdict(set)
        articles_with: dict[str, set[str]] = defaultdict(set)
        for article_id, locale, question in variants:
            text = normalize(question)
            counts: dict[str, int] = defaultdict(int)
            for term in tokens(text):
                counts[term] += 1
            n = len(self.entries)
            self.entries.append(_Entry(article_id, locale, text, dict(counts)))
            for term in counts:
                postings[term].add(n)
                articles_with[term].add(article_id)
        articles = max(1, len({e.article_id for e in self.entries}))
        self.idf = {t: math.log(1 + articles / len(ids)) for t, ids in articles_with.items()}
        self.max_idf = math.log(1 + articles)
        self.postings = {t: sorted(ids) for t, ids in postings.items()}
        self.vocabulary = sorted(t for t in self.idf if not has_cjk(t))
        self.norms = [math.sqrt(sum(self.idf[t] ** 2 for t in e.terms)) or 1.0
                      for e in self.entries]

    def _query_terms(self, text: str) -> tuple[list[str], int]:
        """Known terms of the query (typos mapped to the nearest known word), and how many
        terms the knowledge base has never seen (they make a match less likely)."""
        found, unknown = [], 0
        for term in tokens(text):
            if term in self.idf:
                found.append(term)
                continue
            near = None
            if not has_cjk(term) and len(term) >= 4 and self.vocabulary:
                near = process.extractOne(term, self.vocabulary, scorer=fuzz.ratio,
                                          score_cutoff=80)
            if near is not None:
                found.append(near[0])
            else:
                unknown += 1
        return found, unknown

    def search(self, question: str, locale: str | None, limit: int = 4) -> list[tuple[str, float]]:
        text = normalize(question)
        if not text:
            return []
        terms, unknown = self._query_terms(text)
        if not terms:
            return []
        weights = {t: self.idf[t] for t in set(terms)}
        rare = self.max_idf * self.max_idf * unknown  # unseen words weigh like the rarest
        query_norm = math.sqrt(sum(w * w for w in weights.values()) + rare) or 1.0
        overlap: dict[int, float] = defaultdict(float)
        for term, weight in weights.items():
            for n in self.postings.get(term, ()):
                overlap[n] += weight * weight
        best: dict[str, float] = {}
        for n, shared in overlap.items():
            entry = self.entries[n]
            if locale is not None and entry.locale != locale:
                continue
            cosine = shared / (query_norm * self.norms[n])
            similarity = fuzz.token_set_ratio(text, entry.text) / 100
            score = 100 * (0.65 * cosine + 0.35 * similarity)
            if score > best.get(entry.article_id, -1):
                best[entry.article_id] = score
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        return [(article, round(score, 1)) for article, score in ranked[:limit]]
