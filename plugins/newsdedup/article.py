"""The fields an article says about itself, declared once for the extracted article and the stored row.

A light module (no extraction libraries): newsdedup.extract adds how the text was found, newsdedup.store
where and when it was fetched and what cleaning removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class ArticleFields:
    """An article's own fields: where it is, what it says, who wrote it, when and in which language."""

    url: str
    canonical_url: str
    title: str
    text: str
    author: str | None  # people, "; "-separated
    published_at: datetime | None
    language: str | None
    raw_title: str | None = None  # the page's <title> as it is
    modified_at: datetime | None = None
    date_issue: str | None = None  # "future" or "before_1990": a declared date that was not used
