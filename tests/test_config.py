"""Config: the example loads; every bad key gets one clear message and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "daemon" / "stallbox.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stallbox.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.stall.name == "Kräuter & Kerzen"
    assert config.printer is not None
    assert (config.printer.baudrate, config.printer.codepage, config.printer.cut) \
        == (9600, "cp858", "gs_v")
    assert config.stall.tax_rates["reduced"].rate_bp == 700


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[stall]\nname = "X"\n'))
    assert (config.host, config.port, config.stall.pricing) == ("127.0.0.1", 8080,
                                                                 "gross")
    assert config.printer is None


@pytest.mark.parametrize(("text", "key", "why"), [
    ("", "stall.name", "required"),
    ('[stall]\nname = 5', "stall.name", "string"),
    ('[stall]\nname = "X"\npricing = "both"', "stall.pricing", "gross, net"),
    ('[stall]\nname = "X"\ncurrency = "EURO"', "stall.currency", "ISO 4217"),
    ('[stall]\nname = "X"\ncolour = "red"', "stall.colour", "not a known key"),
    ('[stall]\nname = "X"\n[http]\nport = 70000', "http.port", "between"),
    ('[stall]\nname = "X"\n[http]\nport = true', "http.port", "boolean"),
    ('[stall]\nname = "X"\n[http]\nhost = "stall.local"', "http.host", "IP"),
    ('[stall]\nname = "X"\n[printer]\nbaudrate = 9600', "printer.port", "required"),
    ('[stall]\nname = "X"\n[printer]\nport = "ttyUSB0"', "printer.port", "absolute"),
    ('[stall]\nname = "X"\n[printer]\nport = "/dev/x"\nbaudrate = 9601',
     "printer.baudrate", "one of"),
    ('[stall]\nname = "X"\n[printer]\nport = "/dev/x"\ncut = "scissors"',
     "printer.cut", "gs_v"),
    ('[stall]\nname = "X"\n[printer]\nport = "/dev/x"\ncodepage = "utf8"',
     "printer.codepage", "cp858"),
    ('[stall]\nname = "X"\n[printer]\nport = "/dev/x"\nstopbits = 3',
     "printer.stopbits", "1, 1.5 or 2"),
    ('[stall]\nname = "X"\n[printer]\nport = "/dev/x"\ncolumns = 500',
     "printer.columns", "between"),
    ('[stall]\nname = "X"\n[tax]\nreduced_bp = -5', "tax.reduced_bp", "between"),
    ('[stall]\nname = "X"\n[sync]\nurl = "ftp://x"', "sync.url", "http"),
    ('[stall]\nname = "X"\n[shop]\nx = 1', "shop", "section"),
    ('[stall]\nname = "X"\nstall = 1\n[stall', "stallbox.toml", "TOML"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, key: str,
                                  why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert key in caught.value.key
    assert why in caught.value.why


def test_not_utf8_and_oversized_files(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b'[stall]\nname = "K\xe4se"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)
    path.write_bytes(b"#" * (300 * 1024))
    with pytest.raises(ConfigError, match="larger"):
        load_config(path)


def test_serve_with_bad_config_exits_2_before_opening_anything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write(tmp_path, f'[stall]\nname = "X"\n[state]\ndir = "{state}"\n'
                   '[printer]\nport = "/dev/x"\nparity = "sometimes"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "printer.parity" in proc.stderr
    assert "none, even, odd" in proc.stderr
    assert not state.exists()


def test_empty_state_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[stall]\nname = "X"\n[state]\ndir = ""\n'))
    assert caught.value.key == "state.dir"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_unusable_state_dir_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    config = write(tmp_path, '[stall]\nname = "X"\n[state]\ndir = "/etc/hostname"\n')
    proc = _cli("serve", "--config", str(config))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "/etc/hostname" in proc.stderr


def test_pair_and_export_refuse_a_state_dir_with_no_stall(tmp_path: Path) -> None:
    for command in ("pair", "export"):
        proc = _cli(command, "--state", str(tmp_path / "typo"))
        assert proc.returncode == 1
        assert "no stall at" in proc.stderr
    assert not (tmp_path / "typo").exists()
