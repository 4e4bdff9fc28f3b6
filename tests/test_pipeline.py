"""A whole run through the library (same code path as the DAG) against the demo site on 127.0.0.1."""

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from newsdedup import pipeline, process, store
from newsdedup.config import Settings
from newsdedup.process import ProcessSettings
from newsdedup.sources import Source

from demo import site as demo_site
from tests.conftest import query

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo() -> Iterator[demo_site.DemoSite]:
    running = demo_site.start()
    yield running
    running.stop()


@pytest.fixture
def settings(db_url: str, demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("NEWSDEDUP_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("NEWSDEDUP_MIN_HOST_DELAY", "0")
    sources = tmp_path / "sources.yaml"
    demo_site.write_sources(demo, sources)
    return Settings(db_url=db_url, sources_path=sources)


def test_run_once_stores_every_article(settings: Settings, demo) -> None:
    row = pipeline.run_once(settings)
    expected = len(demo.article_urls())
    assert row["status"] == "success", row
    assert row["articles_new"] == expected
    assert query(settings.db_url, "SELECT count(*) FROM articles") == [(expected,)]
    assert query(settings.db_url, "SELECT count(DISTINCT language) FROM articles") == [(2,)]
    (missing,) = query(
        settings.db_url, "SELECT count(*) FROM articles WHERE published_at IS NULL OR text = ''"
    )
    assert missing == (0,)
    feeds = query(
        settings.db_url, "SELECT count(*) FROM crawl_log WHERE request_kind = 'feed' AND outcome = 'ok'"
    )
    assert feeds == [(row["sources_total"],)]


def test_second_run_fetches_nothing_and_adds_nothing(settings: Settings, demo) -> None:
    first = pipeline.run_once(settings)
    second = pipeline.run_once(settings)  # at once: no source is due again yet (adaptive polling)
    assert (second["sources_total"], second["pages_fetched"], second["articles_new"]) == (0, 0, 0)
    assert query(settings.db_url, "SELECT count(*) FROM crawl_log WHERE run_id = %s", (second["run_id"],)) == [(0,)]
    query(settings.db_url, "UPDATE sources SET next_due_at = now() - interval '1 second' RETURNING 1")
    third = pipeline.run_once(settings)  # all due: read again, nothing new
    assert third["sources_total"] == first["sources_total"]
    assert third["articles_new"] == 0
    assert third["pages_fetched"] == 0
    assert third["urls_skipped_known"] + third["feeds_not_modified"] > 0
    assert query(settings.db_url, "SELECT count(*) FROM articles") == [(first["articles_new"],)]


def test_seed_article_comes_out_clean(settings: Settings, demo) -> None:
    pipeline.run_once(settings)
    ((title, text),) = query(
        settings.db_url, "SELECT title, text FROM articles WHERE canonical_url = %s", (demo.seed_url,)
    )
    assert title.strip()
    assert title not in text
    assert text.count(title) == 0


# --------------------------------------------------------------------------- processing shards: claims

FIXTURES = Path(__file__).parent / "fixtures" / "dedup"


def page(title: str, text: str, outlet: str) -> str:
    """An article page of an outlet around a story's paragraphs."""
    paragraphs = "".join(f"<p>{p}</p>" for p in text.split("\n\n") if p.strip())
    return (
        f"<html><head><title>{title} | {outlet}</title></head><body><nav><a href='/'>{outlet}</a></nav>"
        f"<article><h1>{title}</h1>{paragraphs}</article><footer>© {outlet}</footer></body></html>"
    )


def stage(db_url: str, pages: list[tuple[str, str]]) -> int:
    """A run with these (url, html) pages staged, each from its own outlet's source; its id."""
    sources = [Source(f"outlet-{n}", f"http://127.0.0.{n + 1}/rss.xml", "rss", "en") for n in range(len(pages))]
    with store.connect(db_url) as conn:
        store.sync_sources(conn, sources)
        ids = {s.source.name: s.source_id for s in store.enabled_sources(conn)}
        run_id = store.start_run(conn, f"claims-{len(pages)}", "airflow", len(sources))
        store.save_raw_pages(
            conn,
            run_id,
            [
                store.RawPage(ids[f"outlet-{n}"], url, url, 200, "text/html", "utf-8", html)
                for n, (url, html) in enumerate(pages)
            ],
        )
    return run_id


def plain_pages(count: int) -> list[tuple[str, str]]:
    story = (FIXTURES / "en_wildfire.txt").read_text(encoding="utf-8")
    return [(f"http://127.0.0.{n + 1}/p/{n}", page(f"Page {n}", story, f"outlet {n}")) for n in range(count)]


def test_two_claimers_get_disjoint_pages(db_url: str) -> None:
    run_id = stage(db_url, plain_pages(10))
    first, second = store.open_connection(db_url), store.open_connection(db_url)
    try:
        a = {p["raw_page_id"] for p in store.claim_pages(first, run_id, 0, 4)}
        b = {p["raw_page_id"] for p in store.claim_pages(second, run_id, 0, 100)}
        assert len(a) == 4 and len(b) == 6 and not a & b
        assert store.claim_pages(store_conn := store.open_connection(db_url), run_id, 0, 100) == []
        store_conn.close()
    finally:
        first.close()
        second.close()


def test_a_crashed_claimers_pages_are_claimed_again(db_url: str) -> None:
    """A process that claimed pages is killed: its claims end with its connection, another claimer gets them."""
    run_id = stage(db_url, plain_pages(6))
    code = (
        "import sys, time; from newsdedup import store\n"
        "conn = store.open_connection(sys.argv[1])\n"
        "print(len(store.claim_pages(conn, int(sys.argv[2]), 0, 4)), flush=True)\n"
        "time.sleep(600)\n"
    )
    env = os.environ | {"PYTHONPATH": str(Path(pipeline.__file__).parents[1])}
    crashed = subprocess.Popen(
        [sys.executable, "-c", code, db_url, str(run_id)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert crashed.stdout.readline().strip() == "4"
        other = store.open_connection(db_url)
        assert len(store.claim_pages(other, run_id, 0, 100)) == 2  # the claimed four are skipped
        other.close()
    finally:
        crashed.kill()
        crashed.wait(10)
    written = process.drain_pages(db_url, run_id, ProcessSettings(workers=1, batch_size=2))
    assert written == 6
    assert query(db_url, "SELECT count(*) FROM raw_pages WHERE processed_at IS NULL") == [(0,)]


def test_two_processing_tasks_share_a_run_and_make_one_story_of_its_copies(db_url: str) -> None:
    """Two drain_pages calls at once over copies of one story: every page once, one cluster for the copies."""
    story = (FIXTURES / "en_port_strike.txt").read_text(encoding="utf-8")
    metro = (FIXTURES / "tr_istanbul_metro.txt").read_text(encoding="utf-8")
    copies = [(f"http://127.0.0.{n + 1}/news/port-strike", page("Port strike", story, f"outlet {n}")) for n in range(8)]
    others = [(f"http://127.0.0.{n + 9}/haber/metro", page("Metro hattı", metro, f"gazete {n}")) for n in range(4)]
    run_id = stage(db_url, copies + others)
    settings = ProcessSettings(workers=1, batch_size=1, prefetch=1)
    barrier = threading.Barrier(2)
    written: list[int] = []
    errors: list[BaseException] = []

    def processor() -> None:
        try:
            barrier.wait()
            written.append(process.drain_pages(db_url, run_id, settings))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=processor) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    assert sum(written) == 12 and min(written) > 0, written
    process.finish(db_url, run_id, settings)
    assert query(db_url, "SELECT count(*), count(DISTINCT url) FROM articles") == [(12, 12)]
    clusters = dict(query(db_url, "SELECT url, cluster_id FROM articles"))
    assert len({clusters[url] for url, _ in copies}) == 1
    assert len({clusters[url] for url, _ in others}) == 1
    assert clusters[copies[0][0]] != clusters[others[0][0]]
    assert query(db_url, "SELECT articles_new FROM pipeline_runs WHERE run_id = %s", (run_id,)) == [(12,)]
