"""FAQ matcher quality: how often ``kb.match`` answers with the right article, and stays silent
out of scope, on the team's labelled evaluation set (``tests/data/faq_eval.yaml``).

Per locale (zh-CN, en) and per split - the whole set, the tuning half (first half of each
locale's list) and the held-out half (second half) - it prints:

- top-1: share of in-scope questions whose match is the labelled article;
- OOS recall: share of out-of-scope questions (labelled ``null``) for which match is None;
- answered precision: among questions that got an article (in or out of scope), the share that
  got the right one; and how many in-scope questions got None;
- top-3: share of in-scope questions whose labelled article is the best or one of the next two.

Targets: top-1 >= 90%, OOS recall >= 80%. The matcher is tuned on the first half only, so the
held-out figures are the honest ones. Last line: JSON.

    .venv/bin/python bench/faq_quality.py [--eval PATH] [--misses]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import yaml  # noqa: E402

from knowledge_base import KnowledgeBase  # noqa: E402

EVAL_SET = ROOT / "tests" / "data" / "faq_eval.yaml"
TOP1_TARGET, OOS_TARGET = 0.90, 0.80


@dataclass(frozen=True, slots=True)
class Labelled:
    question: str
    article_id: str | None  # None: out of scope


@dataclass(frozen=True, slots=True)
class Outcome:
    item: Labelled
    answered: str | None
    top3: tuple[str, ...]

    @property
    def right(self) -> bool:
        return self.answered == self.item.article_id


def load_eval(path: Path) -> dict[str, list[Labelled]]:
    """Locale -> labelled questions, in file order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {locale: [Labelled(str(row["q"]), row["id"]) for row in rows]
            for locale, rows in data.items()}


def halves(items: list[Labelled]) -> tuple[list[Labelled], list[Labelled]]:
    middle = len(items) // 2
    return items[:middle], items[middle:]


def run(kb: KnowledgeBase, items: list[Labelled], locale: str) -> list[Outcome]:
    outcomes = []
    for item in items:
        found = kb.match(item.question, locale)
        if found is None:
            outcomes.append(Outcome(item, None, ()))
        else:
            ranked = (found.article_id, *(a for a, _ in found.alternatives[:2]))
            outcomes.append(Outcome(item, found.article_id, ranked))
    return outcomes


def figures(outcomes: list[Outcome]) -> dict[str, float | int]:
    scoped = [o for o in outcomes if o.item.article_id is not None]
    oos = [o for o in outcomes if o.item.article_id is None]
    answered = [o for o in outcomes if o.answered is not None]

    def share(hits: int, of: list[Outcome]) -> float:
        return round(hits / len(of), 4) if of else 0.0

    return {
        "in_scope": len(scoped), "out_of_scope": len(oos),
        "top1": share(sum(o.right for o in scoped), scoped),
        "oos_recall": share(sum(o.answered is None for o in oos), oos),
        "answered_precision": share(sum(o.right for o in answered), answered),
        "in_scope_none": sum(o.answered is None for o in scoped),
        "top3": share(sum(o.item.article_id in o.top3 for o in scoped), scoped),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--eval", type=Path, default=EVAL_SET)
    parser.add_argument("--misses", action="store_true", help="list every wrong answer")
    args = parser.parse_args(argv)
    kb = KnowledgeBase.load()
    sets = load_eval(args.eval)
    print(f"knowledge base: {len(kb)} articles; eval set {args.eval.name}: "
          + ", ".join(f"{loc} {len(items)}" for loc, items in sets.items()))
    print(f"{'locale':<7}{'split':<10}{'in':>5}{'oos':>5}{'top-1':>8}{'OOS rec':>9}"
          f"{'answ prec':>11}{'in->None':>10}{'top-3':>8}")
    result: dict[str, object] = {"benchmark": "faq_quality", "articles": len(kb),
                                 "top1_target": TOP1_TARGET, "oos_recall_target": OOS_TARGET}
    verdicts = []
    for locale, items in sets.items():
        tuning, _ = halves(items)
        outcomes = run(kb, items, locale)
        splits = {"all": outcomes, "tuning": outcomes[:len(tuning)],
                  "held_out": outcomes[len(tuning):]}
        for split, chosen in splits.items():
            f = figures(chosen)
            print(f"{locale:<7}{split:<10}{f['in_scope']:>5}{f['out_of_scope']:>5}"
                  f"{f['top1']:>8.1%}{f['oos_recall']:>9.1%}{f['answered_precision']:>11.1%}"
                  f"{f['in_scope_none']:>10}{f['top3']:>8.1%}")
            result[f"{locale}_{split}"] = f
        whole = result[f"{locale}_all"]
        assert isinstance(whole, dict)
        verdicts.append(f"{locale}: top-1 {whole['top1']:.1%} "
                        f"{'meets' if whole['top1'] >= TOP1_TARGET else 'misses'} >= 90%, "
                        f"OOS recall {whole['oos_recall']:.1%} "
                        f"{'meets' if whole['oos_recall'] >= OOS_TARGET else 'misses'} >= 80%")
        if args.misses:
            for o in outcomes:
                if not o.right:
                    half = "tune" if o in splits["tuning"] else "held"
                    print(f"  miss [{half}] {o.item.question!r}: want {o.item.article_id}, "
                          f"got {o.answered} (top-3 {list(o.top3)})")
    for verdict in verdicts:
        print(verdict)
    print(json.dumps(result, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
