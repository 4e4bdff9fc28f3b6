"""Story clustering against the PostgreSQL index: incremental, concurrent, revisions, offline CLI."""

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest
from newsdedup import pipeline, store
from newsdedup.dedup_records import Doc, fingerprint_text
from newsdedup.dedup_store import PgSignatureStore, assign_clusters
from newsdedup.minhash import DedupParams
from newsdedup.sources import Source

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent / "fixtures"
STORY = (FIXTURES / "dedup" / "en_port_strike.txt").read_text(encoding="utf-8")
OTHER = (FIXTURES / "dedup" / "en_wildfire.txt").read_text(encoding="utf-8")


def add_article(
    conn, url: str, text: str, published: datetime | None = None, source_id: int | None = None
) -> int:
    row = store.ArticleRow(
        url, url, "Title", text, None, published, "en", source_id=source_id, fetched_at=datetime.now(UTC)
    )
    (article_id,) = store.upsert_articles(conn, [row]).new.values()
    return article_id


def scalar(db_url: str, sql: str, params: tuple = ()) -> object:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def test_copies_across_batches_join_the_first_story(db_url: str) -> None:
    with store.connect(db_url) as conn:
        first = add_article(conn, "https://a.example/1", STORY)
        (decision,) = assign_clusters(conn, [Doc(first, STORY)])
        assert decision.method == "new" and decision.cluster_id == first
    paragraphs = STORY.split("\n\n")
    excerpt = "\n\n".join(paragraphs[: max(2, len(paragraphs) // 2)])
    with store.connect(db_url) as conn:
        copy = add_article(conn, "https://b.example/1", "Kaynak: wire\n\n" + STORY.replace('"', "“"))
        short = add_article(conn, "https://c.example/1", excerpt)
        other = add_article(conn, "https://d.example/1", OTHER)
        decisions = assign_clusters(conn, [Doc(copy, STORY), Doc(short, excerpt), Doc(other, OTHER)])
    assert [d.cluster_id for d in decisions[:2]] == [first, first]
    assert decisions[2].method == "new" and decisions[2].cluster_id == other
    assert scalar(db_url, "SELECT size FROM story_clusters WHERE cluster_id = %s", (first,)) == 3
    assert scalar(db_url, "SELECT count(*) FROM duplicate_decisions") == 4
    assert scalar(db_url, "SELECT count(*) FROM article_duplicates WHERE cluster_id = %s", (first,)) == 2


def test_earlier_copy_becomes_canonical(db_url: str) -> None:
    with store.connect(db_url) as conn:
        late = add_article(conn, "https://a.example/late", STORY, datetime(2026, 3, 2, tzinfo=UTC))
        assign_clusters(conn, [Doc(late, STORY, published_at=datetime(2026, 3, 2, tzinfo=UTC))])
        early = add_article(conn, "https://b.example/early", STORY, datetime(2026, 3, 1, tzinfo=UTC))
        (decision,) = assign_clusters(conn, [Doc(early, STORY, published_at=datetime(2026, 3, 1, tzinfo=UTC))])
    assert decision.is_canonical and decision.replaced_canonical_id == late
    assert scalar(db_url, "SELECT canonical_article_id FROM story_clusters") == early
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT article_id, matched_article_id, method FROM article_duplicates")
        assert cur.fetchall() == [(late, early, "exact")]


def test_two_runs_at_once_make_one_cluster(db_url: str) -> None:
    """Two connections assign copies of one story at the same moment: the advisory lock serialises them."""
    with store.connect(db_url) as conn:
        ids = [add_article(conn, f"https://{host}.example/s", STORY) for host in ("a", "b")]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(article_id: int) -> None:
        try:
            with store.connect(db_url) as conn:
                barrier.wait()
                assign_clusters(conn, [Doc(article_id, STORY)])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert scalar(db_url, "SELECT count(*) FROM story_clusters") == 1
    assert scalar(db_url, "SELECT count(DISTINCT cluster_id) FROM articles") == 1


def test_candidates_come_from_the_index(db_url: str) -> None:
    with store.connect(db_url) as conn:
        first = add_article(conn, "https://a.example/1", STORY)
        assign_clusters(conn, [Doc(first, STORY)])
        pg = PgSignatureStore(conn)
        (stored,) = pg.get([first]).values()
        with conn.cursor() as cur:
            cur.execute("SELECT band_hash FROM lsh_bands WHERE article_id = %s", (first,))
            keys = [(0, band_hash) for (band_hash,) in cur.fetchall()]
        assert pg.candidates([keys, [(0, 12345)]], limit=10) == [{first: len(keys)}, {}]
        assert stored.cluster_id == first and len(stored.shingles) > 50


def test_revision_updates_the_article_and_keeps_its_story(db_url: str) -> None:
    html = (FIXTURES / "pages" / "wire_story.html").read_text(encoding="utf-8")
    url = "https://ledger.example.com/2026/03/harbour-bridge-reopens.html"
    revised = html.replace("</article>", "<p>Update: the bridge will close again overnight on Tuesday.</p></article>")
    with store.connect(db_url) as conn:
        store.sync_sources(conn, [Source("ledger", "https://ledger.example.com/rss.xml", "rss", "en")])
        source_id = store.get_source(conn, "ledger").source_id
    for n, page in enumerate((html, revised)):
        with store.connect(db_url) as conn:
            run_id = store.start_run(conn, f"run{n}", "cli", 1)
            store.save_raw_pages(conn, run_id, [store.RawPage(source_id, url, url, 200, "text/html", "utf-8", page)])
        counts = pipeline.process_pages(db_url, run_id)
        assert counts["articles_new" if n == 0 else "articles_updated"] == 1
    assert scalar(db_url, "SELECT count(*) FROM articles") == 1
    assert scalar(db_url, "SELECT count(*) FROM story_clusters") == 1
    assert scalar(db_url, "SELECT count(*) FROM article_versions") == 1
    assert "close again overnight" in scalar(db_url, "SELECT text FROM articles")
    assert "close again overnight" not in scalar(db_url, "SELECT text FROM article_versions")


def test_cluster_cli_offline(tmp_path: Path) -> None:
    paragraphs = STORY.split("\n\n")
    docs = [
        {"id": "orig", "title": "Port strike", "text": STORY, "published_at": "2026-03-01T08:00:00Z"},
        {"id": "copy", "title": "PORT STRIKE", "text": STORY + "\n\nRelated: more news.", "source": "b"},
        {"id": "short", "title": "Strike", "text": "\n\n".join(paragraphs[: int(len(paragraphs) * 0.8)])},
        {"id": "other", "title": "Fire", "text": OTHER},
    ]
    src, out = tmp_path / "docs.jsonl", tmp_path / "assignments.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "newsdedup", "cluster", "--input", str(src), "--output", str(out)],
        check=True,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "plugins"), "PATH": ""},
    )
    rows = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert set(rows) == {"orig", "copy", "short", "other"}
    assert rows["copy"]["cluster"] == rows["short"]["cluster"] == rows["orig"]["cluster"]
    assert rows["other"]["cluster"] != rows["orig"]["cluster"]
    assert rows["copy"]["canonical"] == "orig"
    assert all(set(r) == {"id", "cluster", "canonical", "similarity"} for r in rows.values())


def test_cluster_cli_missing_input(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "newsdedup", "cluster", "--input", str(tmp_path / "no.jsonl"), "--output", "x"],
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "plugins"), "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_params_are_recorded_with_their_version(db_url: str) -> None:
    with store.connect(db_url) as conn:
        first = add_article(conn, "https://a.example/p", STORY)
        (decision,) = assign_clusters(conn, [Doc(first, STORY)])
    params = scalar(db_url, "SELECT params FROM dedup_params WHERE params_version = %s", (decision.params_version,))
    assert params["scheme"] == "affine32" and params["num_perm"] == 128 and params["bands"] * params["rows"] <= 128
    assert scalar(db_url, "SELECT params_version FROM article_signatures") == decision.params_version


def test_outlet_block_is_learnt_in_sql_and_decisions_keep_their_evidence(db_url: str) -> None:
    dedup_dir = FIXTURES / "dedup"
    block = (dedup_dir / "template.txt").read_text(encoding="utf-8").strip()
    stories = (dedup_dir / "short_stories.txt").read_text(encoding="utf-8").split("\n\n")
    rewrite = (dedup_dir / "en_port_strike_rewrite.txt").read_text(encoding="utf-8")
    when = datetime(2026, 3, 1, tzinfo=UTC)
    with store.connect(db_url) as conn:
        feeds = [Source(name, f"https://{name}.example/rss.xml", "rss", "en") for name in ("wire", "courier", "metro")]
        store.sync_sources(conn, feeds)
        wire, courier, metro = (store.get_source(conn, f.name).source_id for f in feeds)
        original = add_article(conn, "https://wire.example/strike", STORY, when, wire)
        assign_clusters(conn, [Doc(original, STORY, published_at=when)])
        for n, story in enumerate(stories[:2]):
            page = add_article(conn, f"https://courier.example/{n}", f"{story}\n{block}", when, courier)
            (decision,) = assign_clusters(conn, [Doc(page, f"{story}\n{block}", published_at=when)])
            assert decision.method == "new"
    brief_text = " ".join(STORY.split()[:60]) + "\n" + block
    with store.connect(db_url) as conn:
        brief = add_article(conn, "https://courier.example/brief", brief_text, when, courier)
        redone = add_article(conn, "https://metro.example/strike", rewrite, when, metro)
        decisions = assign_clusters(
            conn, [Doc(brief, brief_text, published_at=when), Doc(redone, rewrite, published_at=when)]
        )
    assert [(d.cluster_id, d.method) for d in decisions] == [(original, "containment"), (original, "rewrite_jaccard")]
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT source, shingles, max_marks FROM source_boilerplate_summary ORDER BY source")
        learnt = {name: (shingles, marks) for name, shingles, marks in cur.fetchall()}
        cur.execute(
            "SELECT method, threshold, evidence FROM duplicate_decisions "
            "WHERE article_id = ANY(%s) ORDER BY article_id",
            ([brief, redone],),
        )
        rows = cur.fetchall()
    assert learnt["courier"][0] >= 80 and learnt["wire"] == (0, 0) and learnt["metro"] == (0, 0)
    (_, _, brief_evidence), (method, threshold, rewrite_evidence) = rows
    assert brief_evidence["candidate"] == original and brief_evidence["informative"][0] < 70
    assert method == "rewrite_jaccard" and threshold == pytest.approx(DedupParams().rewrite_threshold)
    assert rewrite_evidence["same_source"] is False and rewrite_evidence["jaccard"] >= threshold


def test_migration_renames_minhash_decisions(db_url: str) -> None:
    with store.connect(db_url) as conn:
        first = add_article(conn, "https://a.example/1", STORY)
        copy = add_article(conn, "https://b.example/1", STORY + "\n\nMore at b.example.")
        assign_clusters(conn, [Doc(first, STORY), Doc(copy, STORY + "\n\nMore at b.example.")])
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE duplicate_decisions DROP CONSTRAINT duplicate_decisions_method_check")
            cur.execute("UPDATE duplicate_decisions SET method = 'minhash' WHERE article_id = %s", (copy,))
            cur.execute((store.SQL_DIR / "008_dedup_evidence.sql").read_text(encoding="utf-8"))
    assert scalar(db_url, "SELECT method FROM duplicate_decisions WHERE article_id = %s", (copy,)) == "jaccard"
    with pytest.raises(psycopg2.errors.CheckViolation), psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE duplicate_decisions SET method = 'minhash'")


def test_a_one_article_story_joins_late_in_sql(db_url: str) -> None:
    rewrite = (FIXTURES / "dedup" / "en_port_strike_rewrite.txt").read_text(encoding="utf-8")
    paragraphs = STORY.split("\n\n")
    excerpt = paragraphs[0]
    with store.connect(db_url) as conn:
        feeds = [Source(name, f"https://{name}.example/rss.xml", "rss", "en") for name in ("wire", "metro", "digest")]
        store.sync_sources(conn, feeds)
        wire, metro, digest = (store.get_source(conn, f.name).source_id for f in feeds)
        when = datetime(2026, 3, 1, tzinfo=UTC)
        texts = {"metro": (rewrite, when.replace(hour=5), metro), "digest": (excerpt, when.replace(day=9), digest)}
        ids = {}
        for name, (text, published, source_id) in texts.items():
            ids[name] = add_article(conn, f"https://{name}.example/strike", text, published, source_id)
            (decision,) = assign_clusters(conn, [Doc(ids[name], text, published_at=published)])
            assert decision.method == "new"
        original = add_article(conn, "https://wire.example/strike", STORY, when, wire)
        (decision,) = assign_clusters(conn, [Doc(original, STORY, published_at=when)])
    assert decision.cluster_id == ids["digest"] and decision.is_canonical
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), min(size), min(canonical_article_id) FROM story_clusters")
        assert cur.fetchone() == (1, 3, original)
        cur.execute(
            "SELECT cluster_id, matched_article_id, method, evidence->>'joined_late' FROM duplicate_decisions "
            "WHERE article_id = %s",
            (ids["metro"],),
        )
        assert cur.fetchone() == (ids["digest"], original, "rewrite_jaccard", "true")
        cur.execute("SELECT count(DISTINCT cluster_id) FROM articles")
        assert cur.fetchone() == (1,)


def old_schema_state(conn, text: str, params: DedupParams) -> tuple[int, list[tuple[int, int]]]:
    """One clustered article stored as before migration 012 (band rows with `band_no`); its id and (no, hash) keys."""
    article_id = add_article(conn, "https://a.example/old", text)
    found = fingerprint_text(text, "Title", params)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO article_signatures (article_id, params_version, signature, shingles, text_hash, length) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (article_id, params.version, found.signature.astype("<u4").tobytes(),
             found.shingles.astype("<u4").tobytes(), found.text_hash, found.length),
        )
        psycopg2.extras.execute_values(
            cur, "INSERT INTO lsh_bands (band_no, band_hash, article_id) VALUES %s",
            [(no, value, article_id) for no, value in found.keys],
        )
        cur.execute(
            "INSERT INTO story_clusters (cluster_id, canonical_article_id, canonical_length, size) "
            "VALUES (%s, %s, %s, 1)",
            (article_id, article_id, found.length),
        )
        cur.execute("UPDATE articles SET cluster_id = %s WHERE article_id = %s", (article_id, article_id))
    conn.commit()
    return article_id, found.keys


def test_migration_012_keeps_stored_bands_without_band_no(empty_db_url: str, tmp_path: Path) -> None:
    before = tmp_path / "sql"
    before.mkdir()
    for path in store.migrations():
        if path.stem < "012":
            (before / path.name).symlink_to(path)
    params = DedupParams()
    with store.connect(empty_db_url) as conn:
        store.migrate(conn, before)
        old, keys = old_schema_state(conn, STORY, params)
        assert store.migrate(conn)[0] == "012_compact_bands"  # later migrations follow
        with conn.cursor() as cur:
            cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'lsh_bands' "
                "ORDER BY ordinal_position"
            )
            assert [c for (c,) in cur.fetchall()] == ["band_hash", "article_id"]
            cur.execute("SELECT band_hash, article_id FROM lsh_bands ORDER BY 1")
            assert cur.fetchall() == sorted((value, old) for _, value in keys)
            cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'lsh_bands' ORDER BY indexname")
            assert [d.split(" USING ")[1] for (d,) in cur.fetchall()] == ["btree (article_id)", "btree (band_hash)"]
        copy = add_article(conn, "https://b.example/new", "Kaynak: wire\n\n" + STORY)
        (decision,) = assign_clusters(conn, [Doc(copy, "Kaynak: wire\n\n" + STORY)], params)
        assert decision.cluster_id == old and decision.matched_id == old and decision.candidates >= 1
        # Applied again (a restored file run by hand), it changes nothing; the foreign key still cascades.
        with conn.cursor() as cur:
            cur.execute((store.SQL_DIR / "012_compact_bands.sql").read_text(encoding="utf-8"))
            cur.execute("SELECT count(*) FROM lsh_bands WHERE article_id = %s", (old,))
            assert cur.fetchone() == (len(keys),)
            cur.execute("DELETE FROM article_signatures WHERE article_id = %s", (old,))
            cur.execute("SELECT count(DISTINCT article_id) FROM lsh_bands")
            assert cur.fetchone() == (1,)
