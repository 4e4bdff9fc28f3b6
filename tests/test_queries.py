"""The example queries in sql/queries/, run against the demo data with their results asserted."""

from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest
from newsdedup import pipeline
from newsdedup.config import Settings

from demo import site as demo_site

pytestmark = pytest.mark.integration
QUERIES = Path(__file__).resolve().parents[1] / "sql" / "queries"


@pytest.fixture(scope="module")
def demo_db(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """The demo site ingested once into a module database."""
    patch = pytest.MonkeyPatch()
    patch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    patch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    site = demo_site.start()
    sources = tmp_path_factory.mktemp("q") / "sources.yaml"
    demo_site.write_sources(site, sources)
    pipeline.run_once(Settings(db_url=module_db_url, sources_path=sources))
    yield module_db_url, site
    site.stop()
    patch.undo()


def run(db_url: str, name: str) -> list[dict]:
    with psycopg2.connect(db_url) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute((QUERIES / name).read_text(encoding="utf-8"))
        return [dict(row) for row in cur.fetchall()]


def stories(site) -> dict[str, set[str]]:
    """Ground truth: story id -> URLs of its copies."""
    out: dict[str, set[str]] = {}
    for path, story in site.ground_truth().items():
        out.setdefault(story, set()).add(site.base_url + path)
    return out


def test_every_query_is_documented() -> None:
    schema_doc = (QUERIES.parents[1] / "docs" / "schema.md").read_text(encoding="utf-8")
    for query in QUERIES.glob("*.sql"):
        assert query.read_text(encoding="utf-8").startswith("-- "), query.name
        assert f"sql/queries/{query.name}" in schema_doc, query.name


def test_latest_stories_collapse_copies(demo_db) -> None:
    db, site = demo_db
    rows = run(db, "latest_stories.sql")
    assert len(rows) == 10
    assert [r["published_at"] for r in rows] == sorted((r["published_at"] for r in rows), reverse=True)
    assert len({r["cluster_id"] for r in rows}) == 10
    titles = [r["title"] for r in rows]
    assert len(titles) == len(set(titles)), "a story appears twice among the latest stories"


def test_stories_by_sources_are_the_syndicated_ones(demo_db) -> None:
    db, site = demo_db
    rows = run(db, "stories_by_sources.sql")
    syndicated = [s for s, urls in stories(site).items() if len(urls) > 1]
    assert len(rows) == min(10, len(syndicated))
    assert all(r["n_sources"] >= 2 and r["copies"] >= 2 for r in rows)


def test_search_turkish_finds_the_seed_story_once(demo_db) -> None:
    """Both seeds (the shared one and the demo's own fallback) speak of "müzakereler": one row, its story's."""
    db, site = demo_db
    rows = run(db, "search_turkish.sql")
    assert rows, "no Turkish story matches 'müzakere'"
    with psycopg2.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT cluster_id FROM articles WHERE canonical_url = %s", (site.seed_url,))
        (seed_cluster,) = cur.fetchone()
    assert [r["cluster_id"] for r in rows].count(seed_cluster) == 1, rows
    assert len({r["cluster_id"] for r in rows}) == len(rows), "a story appears twice"


def test_copies_of_article_lists_the_cluster(demo_db) -> None:
    db, site = demo_db
    rows = run(db, "copies_of_article.sql")
    assert rows[0]["canonical"] is True and sum(r["canonical"] for r in rows) == 1
    urls = {r["url"] for r in rows}
    assert any(urls == copies for copies in stories(site).values()), urls


def test_why_duplicate_explains_every_copy(demo_db) -> None:
    db, site = demo_db
    rows = run(db, "why_duplicate.sql")
    copies = sum(len(urls) - 1 for urls in stories(site).values())
    assert len(rows) == copies
    for row in rows:
        assert row["method"] in ("exact", "jaccard", "containment")
        assert row["similarity"] >= row["threshold"]
        assert row["matched"] is not None


def test_removed_segments_show_the_seed_headline_repeats(demo_db) -> None:
    db, site = demo_db
    rows = run(db, "removed_segments.sql")
    with psycopg2.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT article_id, title FROM articles WHERE canonical_url = %s", (site.seed_url,))
        seed_id, seed_title = cur.fetchone()
    seed_rows = [r for r in rows if r["article_id"] == seed_id]
    assert [r["reason"] for r in seed_rows].count("title_repeat") == 2
    assert {r["segment"] for r in seed_rows if r["reason"] == "title_repeat"} == {seed_title[:60]}
    assert any(r["reason"] == "near_duplicate" for r in seed_rows)


def test_demo_clusters_match_the_ground_truth(demo_db) -> None:
    """Pairwise: every pair of copies shares a cluster, no two different stories do."""
    db, site = demo_db
    with psycopg2.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT url, cluster_id FROM articles")
        cluster = dict(cur.fetchall())
    truth = {site.base_url + path: story for path, story in site.ground_truth().items()}
    assert set(cluster) == set(truth)
    urls = sorted(truth)
    for i, a in enumerate(urls):
        for b in urls[i + 1 :]:
            assert (truth[a] == truth[b]) == (cluster[a] == cluster[b]), (a, b)
