"""scripts/install.sh in a throwaway root: user, venv, config, state, unit, udev."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "scripts" / "install.sh"
INSTALL_TIMEOUT_S = 300.0
PRINTER = "0403:6001:A10KXYZ"
TERMINAL = "1A86:7523"

pytestmark = pytest.mark.slow


def make_root(root: Path) -> Path:
    """Lay out the few /etc files useradd needs, as a fresh Debian has them."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\ndialout:*::\n")
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o600)
    return root


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run install.sh into root; dependencies are not fetched (PIP_NO_DEPS)."""
    env = dict(os.environ, PIP_NO_DEPS="1")
    return subprocess.run(["bash", str(INSTALL), "--root", str(root), *args],
                          capture_output=True, text=True, env=env,
                          timeout=INSTALL_TIMEOUT_S)


def snapshot(root: Path) -> dict[str, str]:
    """Hash every file and mode outside the virtual environment."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[:1] == ("opt",) or path.name.endswith("-"):
            continue
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        result[str(rel)] = f"{stat.st_mode:o} {stat.st_uid} {stat.st_gid} {digest}"
    return result


def _ids(root: Path, name: str) -> tuple[int, int]:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"no user {name}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_root(tmp_path_factory.mktemp("root"))
    done = install(root, "--printer", PRINTER, "--terminal", TERMINAL)
    assert done.returncode == 0, done.stderr + done.stdout
    return root


def test_user_is_a_system_user_in_dialout(installed: Path) -> None:
    uid, gid = _ids(installed, "stallbox")
    assert uid < 1000
    passwd = (installed / "etc" / "passwd").read_text()
    assert "stallbox:x:" in passwd and ":/usr/sbin/nologin" in passwd
    group = (installed / "etc" / "group").read_text()
    assert "dialout:x:20:stallbox" in group
    assert f"stallbox:x:{gid}:" in group


def test_files_are_in_place_with_their_modes(installed: Path) -> None:
    uid, gid = _ids(installed, "stallbox")
    assert os.access(installed / "opt/stallbox/bin/stallbox", os.X_OK)
    config = installed / "etc/stallbox/stallbox.toml"
    assert (config.stat().st_mode & 0o777, config.stat().st_gid) == (0o640, gid)
    assert 'port = "/dev/stallbox/printer"' in config.read_text()
    state = (installed / "var/lib/stallbox").stat()
    assert (state.st_mode & 0o777, state.st_uid) == (0o700, uid)
    unit = installed / "etc/systemd/system/stallbox.service"
    assert unit.read_bytes() == (REPO / "systemd/stallbox.service").read_bytes()
    assert (installed / "etc/tmpfiles.d/stallbox.conf").exists()


def test_udev_rules_name_printer_and_terminal(installed: Path) -> None:
    rules = (installed / "etc/udev/rules.d/70-stallbox.rules").read_text()
    active = [line for line in rules.splitlines() if line and line[0] != "#"]
    assert active == [
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", '
        'ATTRS{serial}=="A10KXYZ", SYMLINK+="stallbox/printer", GROUP="dialout", '
        'MODE="0660", TAG+="systemd"',
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", '
        'SYMLINK+="stallbox/terminal", GROUP="dialout", MODE="0660", TAG+="systemd"',
    ]


def test_second_run_changes_nothing_and_keeps_the_config(installed: Path) -> None:
    config = installed / "etc/stallbox/stallbox.toml"
    config.write_text(config.read_text() + "\n# edited by the stall owner\n")
    before = snapshot(installed)
    again = install(installed)
    assert again.returncode == 0, again.stderr
    assert "kept /etc/stallbox/stallbox.toml" in again.stdout
    assert snapshot(installed) == before


def test_bad_device_ids_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    done = install(root, "--printer", "0403:60X1")
    assert done.returncode == 1
    assert "--printer: want VID:PID[:SERIAL]" in done.stderr
    assert sorted(p.name for p in (root / "etc").iterdir()) == [
        "group", "gshadow", "passwd", "shadow"]


def test_root_without_etc_is_refused(tmp_path: Path) -> None:
    done = install(tmp_path / "nothing")
    assert done.returncode == 1
    assert "does not exist" in done.stderr


def test_uninstall_keeps_state_and_config(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    assert install(root).returncode == 0
    (root / "var/lib/stallbox/journal.sqlite3").write_bytes(b"sales")
    done = install(root, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert not (root / "opt/stallbox").exists()
    for gone in ("systemd/system/stallbox.service", "tmpfiles.d/stallbox.conf",
                 "udev/rules.d/70-stallbox.rules"):
        assert not (root / "etc" / gone).exists()
    assert "stallbox" not in (root / "etc/passwd").read_text()
    assert (root / "etc/stallbox/stallbox.toml").exists()
    assert (root / "var/lib/stallbox/journal.sqlite3").read_bytes() == b"sales"
    assert install(root, "--uninstall").returncode == 0
