"""A start whose [stall] id differs from the journal's certificates exits 2 (H3).

Every start certifies a new epoch key with the configured stall id; a journal
whose certificates change id fails `stallbox verify` and the receiver for good,
so serve, demo and the offline commands that may write refuse before anything
binds or the journal is opened for writing.
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
from pathlib import Path

import pytest

from daemon.keys.epoch import certified_stall_id
from scripts.daemonproc import DaemonProcess, run_cli

CATALOG = b"sku,name,price,tax_class\nTEE,Tee,\"3,20\",reduced\n"


def config(path: Path, state: Path, stall_id: str, port: int = 0) -> Path:
    path.write_text(f'[stall]\nname = "Stand"\nid = "{stall_id}"\n[http]\n'
                    f'host = "127.0.0.1"\nport = {port}\n[state]\ndir = "{state}"\n',
                    encoding="utf-8")
    return path


def snapshot(state: Path) -> dict[str, str]:
    """Every file's digest but SQLite's -shm (a reader's lock index, no data)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(state.iterdir())
            if p.is_file() and not p.name.endswith("-shm")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_refused(stderr: str, configured: str, journal: str) -> None:
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("stallbox: config: stall.id: ")
    assert repr(configured) in line and repr(journal) in line
    assert f'set [stall] id = "{journal}"' in line
    assert "new [state] dir" in line


@pytest.fixture(name="alpha")
def fixture_alpha(tmp_path: Path) -> Path:
    """A state dir served once as stall 'alpha' and stopped."""
    state = tmp_path / "state"
    daemon = DaemonProcess(config(tmp_path / "alpha.toml", state, "alpha"))
    assert daemon.terminate() == 0
    return state


def test_serve_with_another_stall_id_exits_2_and_touches_nothing(
        tmp_path: Path, alpha: Path) -> None:
    before = snapshot(alpha)
    port = free_port()
    beta = config(tmp_path / "beta.toml", alpha, "beta", port)
    proc = run_cli("serve", "--config", str(beta))
    assert proc.returncode == 2
    assert_refused(proc.stderr, "beta", "alpha")
    assert str(beta) in proc.stderr
    assert "serving on" not in proc.stderr
    assert snapshot(alpha) == before
    with socket.socket() as sock:  # nothing is listening on the configured port
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    assert run_cli("verify", "--state", str(alpha)).returncode == 0


def test_serve_with_the_same_id_again_still_starts(tmp_path: Path,
                                                   alpha: Path) -> None:
    daemon = DaemonProcess(config(tmp_path / "again.toml", alpha, "alpha"))
    assert daemon.terminate() == 0
    assert certified_stall_id(alpha / "journal.sqlite3") == "alpha"


def test_offline_commands_with_another_config_exit_2(tmp_path: Path,
                                                     alpha: Path) -> None:
    before = snapshot(alpha)
    beta = config(tmp_path / "beta.toml", tmp_path / "elsewhere", "beta")
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(CATALOG)
    for args in (["pair"], ["import-catalog", str(catalog)], ["tablets"],
                 ["identity"]):
        proc = run_cli(*args, "--config", str(beta), "--state", str(alpha))
        assert proc.returncode == 2, (args, proc.stderr)
        assert_refused(proc.stderr, "beta", "alpha")
    assert snapshot(alpha) == before
    assert not (tmp_path / "elsewhere").exists()


def test_offline_commands_with_state_only_keep_the_journals_id(alpha: Path) -> None:
    proc = run_cli("pair", "--state", str(alpha))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("identity", "--state", str(alpha))
    assert "stall 'alpha'" in proc.stdout
    verify = run_cli("verify", "--state", str(alpha))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert certified_stall_id(alpha / "journal.sqlite3") == "alpha"


def test_read_only_commands_still_open_a_journal_of_another_id(
        tmp_path: Path, alpha: Path) -> None:
    beta = config(tmp_path / "beta.toml", alpha, "beta")
    assert run_cli("verify", "--config", str(beta)).returncode == 0
    assert run_cli("export", "--config", str(beta)).returncode == 0


def test_import_catalog_by_state_then_serve_with_another_id(tmp_path: Path) -> None:
    state = tmp_path / "state"
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(CATALOG)
    imported = run_cli("import-catalog", str(catalog), "--state", str(state))
    assert imported.returncode == 0, imported.stderr
    assert certified_stall_id(state / "journal.sqlite3") == "stall-1"
    before = snapshot(state)
    proc = run_cli("serve", "--config",
                   str(config(tmp_path / "s.toml", state, "brk-stall")))
    assert proc.returncode == 2
    assert_refused(proc.stderr, "brk-stall", "stall-1")
    assert snapshot(state) == before


def test_import_catalog_with_config_certifies_the_configured_id(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    conf = config(tmp_path / "s.toml", state, "brk-stall")
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(CATALOG)
    imported = run_cli("import-catalog", str(catalog), "--config", str(conf))
    assert imported.returncode == 0, imported.stderr
    assert certified_stall_id(state / "journal.sqlite3") == "brk-stall"
    ident = run_cli("identity", "--config", str(conf))
    assert ident.returncode == 0
    assert "stall 'brk-stall'" in ident.stdout
    assert "--stall brk-stall " in ident.stdout
    daemon = DaemonProcess(conf)
    assert daemon.terminate() == 0
    assert run_cli("verify", "--state", str(state)).returncode == 0


def test_demo_on_a_state_dir_of_another_stall_exits_2(alpha: Path) -> None:
    before = snapshot(alpha)
    proc = run_cli("demo", "--state", str(alpha), "--port", "0")
    assert proc.returncode == 2
    assert_refused(proc.stderr, "demo-stall", "alpha")
    assert snapshot(alpha) == before


def test_the_stall_id_read_is_one_row_of_the_epochs_table(tmp_path: Path,
                                                         alpha: Path) -> None:
    journal = alpha / "journal.sqlite3"
    conn = sqlite3.connect(journal)
    plan = conn.execute("EXPLAIN QUERY PLAN SELECT cert FROM epochs"
                        " ORDER BY epoch DESC LIMIT 1").fetchall()
    conn.close()
    assert "SCAN events" not in str(plan)
    assert "SCAN epochs" in str(plan)  # the rowid table, read backwards: one row
    assert "TEMP B-TREE" not in str(plan)


@pytest.mark.parametrize("content", [
    b"", b"not a database at all", b"SQLite format 3\x00" + b"\xff" * 600,
])
def test_a_damaged_or_foreign_file_gives_no_id(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(content)
    assert certified_stall_id(path) is None
    assert certified_stall_id(tmp_path / "missing.sqlite3") is None
    assert certified_stall_id(tmp_path) is None


@pytest.mark.parametrize("cert", [
    b"not json", b"[1, 2]", b'{"stall_id": 5}', b'{"epoch": 1}', b"\xff\xfe",
])
def test_a_hostile_certificate_row_gives_no_id(tmp_path: Path, cert: bytes) -> None:
    path = tmp_path / "journal.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE epochs (epoch INTEGER PRIMARY KEY, public_key BLOB,"
                 " seq INTEGER, cert BLOB)")
    conn.execute("INSERT INTO epochs VALUES (1, x'00', 1, ?)", (cert,))
    conn.commit()
    conn.close()
    assert certified_stall_id(path) is None


def test_a_journal_without_an_epochs_table_gives_no_id(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    assert certified_stall_id(path) is None
