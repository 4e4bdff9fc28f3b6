"""scripts/pg.sh: a private cluster only its owner can use, in a home nobody can predict or plant."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
from newsdedup import store

REPO = Path(__file__).resolve().parents[1]
ROOT = os.geteuid() == 0
as_root = pytest.mark.skipif(not ROOT, reason="runs another local user with runuser: needs root (as CI)")


@dataclass
class Checkout:
    """A copy of scripts/pg.sh in a checkout of its own, so its remembered home (.pg-home) is the test's."""

    root: Path

    @classmethod
    def make(cls, base: Path) -> Checkout:
        (base / "scripts").mkdir(parents=True)
        for script in ("pg.sh", "service_user.sh"):  # pg.sh sources service_user.sh
            shutil.copy2(REPO / "scripts" / script, base / "scripts" / script)
        return cls(base)

    def pg(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run the copy's pg.sh; NEWSDEDUP_PGHOME only when env gives it."""
        base = {k: v for k, v in os.environ.items() if k not in ("NEWSDEDUP_PGHOME", "TMPDIR")}
        base["NEWSDEDUP_PGOPTS"] = "-c fsync=off"
        return subprocess.run([str(self.root / "scripts" / "pg.sh"), *args], env=base | (env or {}),
                              capture_output=True, text=True, timeout=120)

    @property
    def home(self) -> Path:
        return Path((self.root / ".pg-home").read_text().strip())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    """A cluster started the default way (no NEWSDEDUP_PGHOME), destroyed afterwards."""
    checkout = Checkout.make(tmp_path_factory.mktemp("checkout"))
    started = checkout.pg("start")
    assert started.returncode == 0, started.stderr
    yield checkout
    checkout.pg("destroy")


def run_as_nobody(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "nobody", "--", *args], capture_output=True, text=True, timeout=60,
                          cwd="/", stdin=subprocess.DEVNULL, env={"PATH": os.environ["PATH"]})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_default_home_is_private_remembered_and_unpredictable(cluster: Checkout, tmp_path: Path) -> None:
    memo = cluster.root / ".pg-home"
    assert mode(memo) == 0o600
    home = cluster.home
    assert re.fullmatch(r"/tmp/newsdedup-pg\.\w{8}", str(home)), home  # mktemp -d, not a hash of the path
    assert home.is_dir() and not home.is_symlink() and mode(home) == 0o700
    assert mode(home / "pgpass") == 0o600
    if ROOT:
        assert home.owner() == "postgres"
    again = cluster.pg("start")
    assert again.returncode == 0 and "already running" in again.stdout and str(home) in again.stdout
    other = Checkout.make(tmp_path / "other")
    try:
        assert other.pg("start").returncode == 0
        other_home = other.home
        assert other_home != home  # same script, another home
    finally:
        destroyed = other.pg("destroy")
    assert destroyed.returncode == 0 and not other_home.exists() and not (other.root / ".pg-home").exists()


@as_root
def test_another_local_user_is_refused(cluster: Checkout) -> None:
    port = cluster.pg("port").stdout.strip()
    psql = shutil.which("psql") or "psql"
    tcp = run_as_nobody(psql, "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "postgres", "-c", "SELECT 1")
    assert tcp.returncode != 0 and "no password supplied" in tcp.stderr, tcp.stdout + tcp.stderr
    guess = run_as_nobody("env", "PGPASSWORD=postgres", psql, "-h", "127.0.0.1", "-p", port, "-U", "postgres",
                          "-d", "postgres", "-c", "SELECT 1")
    assert guess.returncode != 0 and "password authentication failed" in guess.stderr
    socket = run_as_nobody(psql, "-h", str(cluster.home / "data"), "-p", port, "-U", "postgres", "-c", "SELECT 1")
    assert socket.returncode != 0
    assert run_as_nobody("cat", str(cluster.home / "pgpass")).returncode != 0
    # The owner's URL works as printed.
    with psycopg2.connect(cluster.pg("url", "postgres").stdout.strip()) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, current_setting('listen_addresses')")
        assert cur.fetchone() == ("postgres", "127.0.0.1")
    conn.close()


def test_reader_url_reads_and_cannot_write(cluster: Checkout) -> None:
    before = cluster.pg("reader-url", "newsdedup")
    assert before.returncode != 0 and "newsdedup db migrate" in before.stderr  # the role comes from the schema
    owner_url = cluster.pg("url", "newsdedup").stdout.strip()
    with store.connect(owner_url) as conn:
        store.migrate(conn)
    printed = cluster.pg("reader-url", "newsdedup")
    assert printed.returncode == 0, printed.stderr
    reader = printed.stdout.strip()
    assert reader.startswith("postgresql://newsdedup_analyst:")
    assert cluster.pg("reader-url", "newsdedup").stdout.strip() == reader  # same login, same password
    conn = psycopg2.connect(reader)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM articles")
        assert cur.fetchone() == (0,)
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("DELETE FROM articles")
    conn.rollback()
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("SELECT * FROM raw_pages")
    conn.close()
    # Without a password in the URL, the 0600 password file works: what the demo shows for psql.
    passfile = cluster.pg("passfile").stdout.strip()
    bare = re.sub(r":[^:@/]*@", "@", reader)
    done = subprocess.run(["psql", "-X", "-Atc", "SELECT current_user", bare], capture_output=True, text=True,
                          env=os.environ | {"PGPASSFILE": passfile}, stdin=subprocess.DEVNULL, timeout=60)
    assert done.stdout.strip() == "newsdedup_analyst", done.stderr


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[Path]:
    """A directory of another user (with a file in it), as an attacker would leave it."""
    target = Path(f"/tmp/newsdedup-planted-{uuid.uuid4().hex[:8]}")
    target.mkdir(mode=0o755)
    (target / "theirs.txt").write_text("not yours")
    if ROOT:
        shutil.chown(target, "nobody")
    yield target
    shutil.rmtree(target)


def snapshot(path: Path) -> tuple:
    info = path.lstat()
    return info.st_mode, info.st_uid, info.st_gid, sorted(p.name for p in path.iterdir())


@pytest.mark.parametrize("command", ["start", "stop", "destroy", "url"])
def test_planted_symlink_home_is_refused_untouched(cluster: Checkout, planted: Path, command: str) -> None:
    link = Path(f"/tmp/newsdedup-link-{uuid.uuid4().hex[:8]}")
    link.symlink_to(planted)
    try:
        before = snapshot(planted)
        done = cluster.pg(command, env={"NEWSDEDUP_PGHOME": str(link)})
        assert done.returncode != 0 and "symbolic link" in done.stderr, done.stdout + done.stderr
        assert snapshot(planted) == before and link.is_symlink()
    finally:
        link.unlink()


@pytest.mark.parametrize("command", ["start", "destroy"])
def test_foreign_home_is_refused_untouched(cluster: Checkout, planted: Path, command: str) -> None:
    before = snapshot(planted)
    done = cluster.pg(command, env={"NEWSDEDUP_PGHOME": str(planted)})
    assert done.returncode != 0 and "refusing" in done.stderr and "choose another NEWSDEDUP_PGHOME" in done.stderr
    assert ("belongs to nobody" if ROOT else "mode 755") in done.stderr
    assert snapshot(planted) == before


def test_own_home_open_to_others_is_refused(cluster: Checkout, tmp_path: Path) -> None:
    home = Path(f"/tmp/newsdedup-open-{uuid.uuid4().hex[:8]}")
    home.mkdir(mode=0o755)
    try:
        done = cluster.pg("start", env={"NEWSDEDUP_PGHOME": str(home)})
        assert done.returncode != 0 and "mode 755, expected 700" in done.stderr
        assert mode(home) == 0o755 and list(home.iterdir()) == []
    finally:
        home.rmdir()


def test_home_under_a_shared_writable_parent_is_refused(cluster: Checkout) -> None:
    parent = Path(f"/tmp/newsdedup-parent-{uuid.uuid4().hex[:8]}")
    parent.mkdir()
    parent.chmod(0o777)  # anyone could swap a directory made in it: no sticky bit
    try:
        done = cluster.pg("start", env={"NEWSDEDUP_PGHOME": str(parent / "pg")})
        assert done.returncode != 0 and "writable by other users and not sticky" in done.stderr
        assert list(parent.iterdir()) == []
    finally:
        parent.rmdir()
