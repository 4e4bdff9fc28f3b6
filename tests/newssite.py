"""A small news site for `run_once` tests: article pages, an RSS feed announcing them, one-feed settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from newsdedup import pipeline
from newsdedup.config import Settings

from tests.conftest import make_due
from tests.httpfixtures import LocalHTTPServer

Articles = dict[str, tuple[str, list[str]]]  # path -> (title, paragraphs)


def article_page(title: str, paragraphs: list[str], language: str | None = None) -> str:
    """An article page: the title as <title> and <h1>, then its paragraphs."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    lang = f" lang='{language}'" if language else ""
    head = f"<!DOCTYPE html><html{lang}><head><meta charset='utf-8'><title>{title}</title></head>"
    return f"{head}<body><article><h1>{title}</h1>{body}</article></body></html>"


def rss_feed(
    server: LocalHTTPServer, channel: str, articles: Articles, paths: list[str], published: str, updated: dict[str, str]
) -> str:
    """An RSS feed announcing these paths, each with its pubDate and, where given, its atom:updated."""
    items = "".join(
        f"<item><title>{articles[p][0]}</title><link>{server.url(p)}</link><pubDate>{published}</pubDate>"
        + (f"<atom:updated>{updated[p]}</atom:updated>" if p in updated else "")
        + "</item>"
        for p in paths
    )
    return (
        "<?xml version='1.0'?><rss version='2.0' xmlns:atom='http://www.w3.org/2005/Atom'><channel>"
        f"<title>{channel}</title>{items}</channel></rss>"
    )


def one_feed_settings(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, feed_url: str
) -> Settings:
    """Settings for one RSS source on 127.0.0.1, fetched without delay by one worker."""
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    monkeypatch.setenv("NEWSDEDUP_WORKERS", "1")
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - {{name: {name}, url: '{feed_url}', kind: rss}}\n")
    return Settings(db_url=db_url, sources_path=sources)


def hourly(settings: Settings, run_key: str) -> dict:
    """`newsdedup ingest` an hour after the last run: every source is due again (adaptive polling)."""
    make_due(settings.db_url)
    return pipeline.run_once(settings, run_key=run_key)
