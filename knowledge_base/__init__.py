"""FAQ articles (zh-CN, en) as data, and the matcher that answers from them."""

from knowledge_base.base import Article, KnowledgeBase, KnowledgeBaseError
from knowledge_base.matcher import Match

__all__ = ["Article", "KnowledgeBase", "KnowledgeBaseError", "Match"]
