"""`newsdedup dedup rebuild` on real PostgreSQL: new params, resumption after a real kill, the pipeline meanwhile."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from newsdedup import process, store
from newsdedup.config import ConfigError
from newsdedup.dedup_records import Doc
from newsdedup.dedup_store import DEDUP_LOCK, assign_clusters
from newsdedup.minhash import DedupParams
from newsdedup.rebuild import params_from_json, rebuild
from newsdedup.sources import Source

from tests.conftest import REPO, query

NEW_PARAMS_JSON = '{"seed": 7, "num_perm": 96, "bands": 48}'
NEW = params_from_json(NEW_PARAMS_JSON)
SOURCES = ("kent-haber", "ege-gazete", "river-times", "valley-courier")
T0 = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)

# Word banks of our own for generated stories with the shape of real ones (paragraphs of sentences).
_EN = (
    "council harbour budget ferry workers union strike minister school hospital river bridge storm "
    "festival museum library court judge mayor police station market farmers harvest drought rain "
    "flood tunnel railway airport pilots nurses teachers students parents residents district village "
    "factory plant energy solar wind grid prices inflation rent housing tenants landlords permit "
    "planning committee vote motion report inquiry audit contract tender cost million pounds dollars "
    "said announced warned agreed rejected delayed opened closed repaired inspected approved funded "
    "on Tuesday after before during since while despite because although meanwhile later earlier "
    "the a of to in for with at by from new local regional national annual weekly northern coastal"
)
_TR = (
    "belediye meclis bütçe vapur işçi sendika grev bakan okul hastane nehir köprü fırtına festival "
    "müze kütüphane mahkeme hakim başkan polis karakol pazar çiftçi hasat kuraklık yağmur sel tünel "
    "demiryolu havalimanı pilot hemşire öğretmen öğrenci veli sakin ilçe köy fabrika santral enerji "
    "güneş rüzgar şebeke fiyat enflasyon kira konut kiracı ev sahibi ruhsat imar komisyon oylama "
    "önerge rapor soruşturma denetim sözleşme ihale maliyet milyon lira açıkladı uyardı kabul etti "
    "reddetti erteledi açtı kapattı onardı denetledi onayladı salı günü sonra önce sırasında beri "
    "rağmen çünkü ayrıca yeni yerel bölgesel ulusal yıllık haftalık kuzey kıyı ve ile için bu bir"
)
EN_WORDS, TR_WORDS = _EN.split(), _TR.split()


@dataclass(frozen=True)
class Item:
    """One stored article of the generated corpus."""

    url: str
    title: str
    text: str
    source: str
    language: str
    published_at: datetime


def _sentence(rng: random.Random, words: list[str]) -> str:
    """A sentence of 9-16 words."""
    picked = [rng.choice(words) for _ in range(rng.randint(9, 16))]
    return " ".join(picked).capitalize() + "."


def _story(rng: random.Random, words: list[str], paragraphs: int, sentences: int) -> list[str]:
    """Paragraphs of generated sentences."""
    return [" ".join(_sentence(rng, words) for _ in range(sentences)) for _ in range(paragraphs)]


def corpus(stories: int, seed: int = 1, paragraphs: int = 5, sentences: int = 3) -> list[Item]:
    """Stories in Turkish and English, most carried by other outlets as copies, excerpts or edits.

    Each story ends with the opening paragraph of the story two before it (background quoted from an
    earlier story): different stories then share text, which the engine learns as boilerplate.
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    items: list[Item] = []
    bodies: list[list[str]] = []
    for n in range(stories):
        lang = "tr" if n % 2 else "en"
        words = TR_WORDS if lang == "tr" else EN_WORDS
        body = _story(rng, words, paragraphs, sentences)
        if n >= 2:
            body[-1] = bodies[n - 2][0]
        bodies.append(body)
        title = _sentence(rng, words)[:-1]
        when = T0 + timedelta(hours=n)
        copies = [("orig", title, "\n\n".join(body))]
        if n % 4 != 3:  # a quarter of the stories stay alone
            edited = " ".join(w if i % 40 else rng.choice(words) for i, w in enumerate("\n\n".join(body).split(" ")))
            copies += [
                ("wire", f"{title} (ajans)", "\n\n".join(body) + "\n\n" + _sentence(rng, words)),
                ("excerpt", title, "\n\n".join(body[: paragraphs // 2 + 1])),
                ("edited", title.upper(), edited),
            ][: 1 + n % 3]
        for k, (kind, head, text) in enumerate(copies):
            source = SOURCES[(n + k) % len(SOURCES)]
            url = f"https://{source}.example/{n}/{kind}"
            items.append(Item(url, head, text, source, lang, when + timedelta(minutes=7 * k)))
    rng.shuffle(items)  # copies arrive among other stories, not next to their original
    return items


def article_rows(conn: store.Connection, items: list[Item]) -> list[store.ArticleRow]:
    """The items as the pipeline stores them, with their sources created."""
    store.sync_sources(conn, [Source(name, f"https://{name}.example/rss") for name in SOURCES])
    with conn.cursor() as cur:
        cur.execute("SELECT name, source_id FROM sources")
        ids = dict(cur.fetchall())
    return [
        store.ArticleRow(
            i.url, i.url, i.title, i.text, None, i.published_at, i.language,
            source_id=ids[i.source], fetched_at=i.published_at,
        )
        for i in items
    ]


def ingest(db_url: str, items: list[Item], batch: int = 1) -> None:
    """Store and cluster the items the way the pipeline does (its default params); batches of 1 keep their order."""
    with store.connect(db_url) as conn:
        rows = article_rows(conn, items)
        for start in range(0, len(rows), batch):
            process.load_articles(conn, rows[start : start + batch])
            conn.commit()


def fresh(db_url: str, items: list[Item], params: DedupParams) -> None:
    """Store the items in their order, then cluster them from nothing under `params`, in that order."""
    with store.connect(db_url) as conn:
        ids = [store.upsert_articles(conn, [row]).new[row.canonical_url] for row in article_rows(conn, items)]
        docs = [
            Doc(id=n, text=i.text, title=i.title, published_at=i.published_at, source=i.source, url=i.url)
            for n, i in zip(ids, items, strict=True)
        ]
        for start in range(0, len(docs), 25):
            assign_clusters(conn, docs[start : start + 25], params)


def clustering(db_url: str) -> dict[str, tuple[frozenset[str], str, str]]:
    """Per article URL: its story's member URLs, the story's canonical URL, and its decision's method."""
    rows = query(
        db_url,
        "SELECT a.canonical_url, a.cluster_id, ca.canonical_url, d.method "
        "FROM articles a JOIN story_clusters c USING (cluster_id) "
        "JOIN articles ca ON ca.article_id = c.canonical_article_id "
        "JOIN duplicate_decisions d ON d.article_id = a.article_id",
    )
    members: dict[int, set[str]] = {}
    for url, cluster, _, _ in rows:
        members.setdefault(cluster, set()).add(url)
    return {url: (frozenset(members[cluster]), canonical, method) for url, cluster, canonical, method in rows}


def stories(found: dict[str, tuple[frozenset[str], str, str]]) -> set[tuple[frozenset[str], str]]:
    """The stories with their canonical URLs, whatever decided each member."""
    return {(members, canonical) for members, canonical, _ in found.values()}


def assert_clean_state(db_url: str, params: DedupParams, articles: int) -> None:
    """Exactly one signature and one decision per article, all of `params`' version; no band twice; true stories."""
    versions = query(db_url, "SELECT params_version, count(*) FROM article_signatures GROUP BY 1")
    assert versions == [(params.version, articles)]
    assert query(db_url, "SELECT params_version, count(*) FROM duplicate_decisions GROUP BY 1") == versions
    ((bands, distinct),) = query(
        db_url, "SELECT count(*), count(DISTINCT (article_id, band_hash)) FROM lsh_bands"
    )
    assert bands == distinct >= articles
    assert_stories_true(db_url)


LEARNT = ("common_shingles", "source_boilerplate")  # what exists of them is compared


def state_counts(db_url: str) -> dict[str, tuple]:
    """Row counts of the dedup state, and the marks learnt: equal to a fresh ingest's means nothing doubled."""
    counts = {
        table: query(db_url, f"SELECT count(*) FROM {table}")[0]  # noqa: S608 - fixed names
        for table in ("article_signatures", "lsh_bands", "duplicate_decisions", "story_clusters")
    }
    for table in LEARNT:
        if query(db_url, "SELECT to_regclass(%s)", (table,))[0][0] is not None:
            counts[table] = query(db_url, f"SELECT count(*), sum(marks) FROM {table}")[0]  # noqa: S608
    return counts


def assert_stories_true(db_url: str) -> None:
    """Every article is in a story; every story has members, its true size and seen times, a member as canonical."""
    assert query(db_url, "SELECT count(*) FROM articles WHERE cluster_id IS NULL") == [(0,)]
    assert query(
        db_url,
        "SELECT count(*) FROM story_clusters c LEFT JOIN (SELECT cluster_id, count(*) AS n, "
        "min(first_seen_at) AS first_seen, max(first_seen_at) AS last_seen FROM articles GROUP BY 1) m "
        "USING (cluster_id) WHERE m.n IS NULL OR c.size <> m.n OR c.first_seen_at <> m.first_seen "
        "OR c.last_seen_at < m.last_seen OR NOT EXISTS (SELECT 1 FROM articles a "
        "WHERE a.article_id = c.canonical_article_id AND a.cluster_id = c.cluster_id)",
    ) == [(0,)]


ITEMS = corpus(24)


@pytest.fixture(scope="module")
def fresh_db_url(module_db_url: str) -> str:
    """A database where the corpus was ingested fresh under the new params."""
    fresh(module_db_url, ITEMS, NEW)
    assert_clean_state(module_db_url, NEW, len(ITEMS))
    return module_db_url


@pytest.fixture(scope="module")
def expected(fresh_db_url: str) -> dict[str, tuple[frozenset[str], str, str]]:
    """The stories a fresh ingest under the new params gives."""
    return clustering(fresh_db_url)


def test_corpus_has_copies_and_new_params_change_the_version(expected: dict) -> None:
    assert len(ITEMS) > len(stories(expected)) >= 24  # every generated story kept apart, its copies joined
    methods = {method for _, _, method in expected.values()}
    assert "new" in methods and len(methods) >= 3  # copies found by more than one rule
    assert NEW.version != DedupParams().version


def test_rebuild_under_new_params_matches_a_fresh_ingest(db_url: str, fresh_db_url: str, expected: dict) -> None:
    ingest(db_url, ITEMS)
    assert_clean_state(db_url, DedupParams(), len(ITEMS))
    old = clustering(db_url)

    report = rebuild(db_url, NEW, batch_size=5)

    assert (report.resumed, report.articles, report.finished) == (False, len(ITEMS), True)
    assert report.batches == -(-len(ITEMS) // 5)
    assert clustering(db_url) == expected
    assert {m for m, _, _ in old.values()} == {m for m, _, _ in expected.values()}  # same stories, new state
    assert_clean_state(db_url, NEW, len(ITEMS))
    assert state_counts(db_url) == state_counts(fresh_db_url)
    assert query(db_url, "SELECT count(*) FROM dedup_params") == [(2,)]

    again = rebuild(db_url, NEW, batch_size=5)  # nothing new stored: nothing to redo
    assert (again.resumed, again.articles, again.finished) == (True, 0, True)
    assert clustering(db_url) == expected


def test_rebuild_continues_where_it_stopped_and_restart_starts_over(
    db_url: str, fresh_db_url: str, expected: dict
) -> None:
    ingest(db_url, ITEMS)
    first = rebuild(db_url, NEW, batch_size=4, max_batches=2)
    assert (first.articles, first.finished) == (8, False)
    # Half-way, the database keeps working: every article is in a true story, of one version or the other.
    assert_stories_true(db_url)
    versions = query(db_url, "SELECT params_version, count(*) FROM article_signatures GROUP BY 1")
    assert sorted(n for _, n in versions) == [8, len(ITEMS) - 8]

    rest = rebuild(db_url, NEW, batch_size=4)
    assert (rest.resumed, rest.articles, rest.articles_done, rest.finished) == (True, len(ITEMS) - 8, len(ITEMS), True)
    assert clustering(db_url) == expected
    assert_clean_state(db_url, NEW, len(ITEMS))
    assert state_counts(db_url) == state_counts(fresh_db_url)

    over = rebuild(db_url, NEW, batch_size=7, restart=True)
    assert (over.resumed, over.articles) == (False, len(ITEMS))
    # Articles not redone yet are already of the target version and seen as candidates: the same stories
    # and canonicals, though a decision may name another copy of its story as the match.
    assert stories(clustering(db_url)) == stories(expected)
    assert_clean_state(db_url, NEW, len(ITEMS))


def test_the_pipeline_may_store_articles_while_a_rebuild_is_under_way(db_url: str) -> None:
    items = corpus(24, seed=3)
    later = [i for i in items if i.url.endswith(("/wire", "/edited"))]
    ingest(db_url, [i for i in items if i not in later], batch=10)
    rebuild(db_url, NEW, batch_size=6, max_batches=2)
    ingest(db_url, later, batch=10)  # the hourly run, with its own (default) params, between two batches
    assert_stories_true(db_url)
    report = rebuild(db_url, NEW, batch_size=6)
    assert report.finished
    assert_clean_state(db_url, NEW, len(items))
    by_story: dict[str, set[str]] = {}
    for item in items:
        by_story.setdefault(item.url.split("/")[3], set()).add(item.url)
    assert {members for members, _ in stories(clustering(db_url))} == {frozenset(u) for u in by_story.values()}


def test_params_from_json_names_the_bad_field() -> None:
    assert params_from_json(None) == DedupParams()
    assert params_from_json('{"seed": 7}').version != DedupParams().version
    with pytest.raises(ConfigError, match="colour"):
        params_from_json('{"colour": 1}')
    with pytest.raises(ConfigError, match="--params"):
        params_from_json('{"num_perm": 0}')
    with pytest.raises(ConfigError, match="not a JSON object"):
        params_from_json("[7]")


KILL_SWITCH = 4_172_999  # advisory lock the test holds to stop the rebuild inside its second batch


def _stall_second_batch(conn: psycopg2.extensions.connection) -> None:
    """Make the rebuild's second progress update wait on a lock this connection holds."""
    with conn.cursor() as cur:
        cur.execute(
            "CREATE FUNCTION test_stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.batches_done >= 2 THEN PERFORM pg_advisory_xact_lock({KILL_SWITCH}); END IF; "
            "RETURN NEW; END $$"
        )
        cur.execute(
            "CREATE TRIGGER test_stall BEFORE UPDATE ON dedup_rebuilds FOR EACH ROW EXECUTE FUNCTION test_stall()"
        )
        cur.execute("SELECT pg_advisory_lock(%s)", (KILL_SWITCH,))


def _wait_until_stalled(conn: psycopg2.extensions.connection, child: subprocess.Popen) -> None:
    """Wait until the rebuild has committed one batch and waits inside the second."""
    deadline = time.monotonic() + 60
    with conn.cursor() as cur:
        while time.monotonic() < deadline and child.poll() is None:
            cur.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s",
                (KILL_SWITCH,),
            )
            if cur.fetchone()[0]:
                return
            time.sleep(0.05)
    pytest.fail(f"the rebuild never reached its second batch (exit code {child.poll()})")


def cli_rebuild(db_url: str, *args: str) -> subprocess.Popen:
    """`python -m newsdedup dedup rebuild` in a subprocess."""
    env = {"PYTHONPATH": str(REPO / "plugins"), "PATH": os.environ["PATH"], "NEWSDEDUP_DB_URL": db_url}
    argv = [sys.executable, "-m", "newsdedup", "dedup", "rebuild", "--params", NEW_PARAMS_JSON, *args]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_rebuild_resumes_and_ends_as_an_uninterrupted_one(
    db_url: str, fresh_db_url: str, expected: dict
) -> None:
    ingest(db_url, ITEMS)
    control = psycopg2.connect(db_url)
    control.autocommit = True
    try:
        _stall_second_batch(control)
        child = cli_rebuild(db_url, "--batch-size", "5", "--no-progress")
        try:
            _wait_until_stalled(control, child)
            with control.cursor() as cur:  # the pipeline's dedup lock is held by the batch in flight
                cur.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = %s "
                    "AND pid <> pg_backend_pid()",
                    (DEDUP_LOCK,),
                )
                assert cur.fetchone() == (1,)
            child.send_signal(signal.SIGKILL)  # killed with batch 2 written but not committed
        finally:
            child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        with control.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (KILL_SWITCH,))
            cur.execute("DROP TRIGGER test_stall ON dedup_rebuilds")  # waits until the server drops batch 2
    finally:
        control.close()
    assert query(db_url, "SELECT batches_done, articles_done, finished_at FROM dedup_rebuilds") == [(1, 5, None)]
    assert query(db_url, "SELECT count(*) FROM article_signatures WHERE params_version = %s", (NEW.version,)) == [(5,)]
    assert_stories_true(db_url)

    resumed = cli_rebuild(db_url, "--batch-size", "5")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert '"resumed": true' in out and f'"articles": {len(ITEMS) - 5},' in out
    assert clustering(db_url) == expected
    assert_clean_state(db_url, NEW, len(ITEMS))
    assert state_counts(db_url) == state_counts(fresh_db_url)
