"""Config: hostile, oversized and malformed values exit 2 naming the key (M5, M2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
HUGE = "9" * 5001
MATERIAL = '[carbon.materials.paper]\nvalue = "1.0"\nsource = "Test LCA"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stallbox.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value


@pytest.mark.parametrize(("text", "key"), [
    (f'[stall]\nname = "X"\n[http]\nport = {HUGE}\n', "http.port"),
    (f'[stall]\nname = "X"\n[keys]\nepoch_max_s = -{HUGE}\n', "keys.epoch_max_s"),
    (f'[stall]\nname = "X"\n[tax]\n"standard_bp" = {HUGE[:1200]}\n',
     "tax.standard_bp"),
    (f'[stall]\nname = "X"\n[carbon]\nusd_per_unit = "{HUGE}"\n',
     "carbon.usd_per_unit"),
    (f'[stall]\nname = "X"\n[carbon]\nusd_per_unit = "0.{HUGE}"\n',
     "carbon.usd_per_unit"),
    (f'[stall]\nname = "X"\n[carbon.materials.paper]\nvalue = "{HUGE}"\n'
     'source = "S"\n', "carbon.materials.paper.value"),
    (f'[stall]\nname = "X"\n[carbon.materials.paper]\nvalue = "1"\n'
     f'uncertainty = "0.{HUGE}"\nsource = "S"\n', "carbon.materials.paper.uncertainty"),
    (f'[stall]\nname = "X"\n[cash]\nrounding_step = "{HUGE}"\n', "cash.rounding_step"),
    (f'[stall]\nname = "X"\n[packaging.cup]\nfee = "{HUGE}"\n', "packaging.cup.fee"),
])
def test_numbers_of_thousands_of_digits_name_the_key(tmp_path: Path, text: str,
                                                     key: str) -> None:
    assert refused(tmp_path, text).key == key


@pytest.mark.parametrize(("text", "key"), [
    ('[stall]\nname = "S3\\nBcc: evil@x.org"\n', "stall.name"),
    ('[stall]\nname = "S3\\rBcc: x"\n', "stall.name"),
    ('[stall]\nname = "X"\naddress = "Markt 1\\nX-Hdr: 1"\n', "stall.address"),
    ('[stall]\nname = "X"\nreceipt_footer = "Danke\\u001b[2J"\n',
     "stall.receipt_footer"),
    ('[stall]\nname = "X"\nvat_id = "DE1\\u0000"\n', "stall.vat_id"),
    ('[stall]\nname = "X\\u2028Y"\n', "stall.name"),
    ('[stall]\nname = "X\\u0085Y"\n', "stall.name"),
    ('[stall]\nname = "X\\tY"\n', "stall.name"),
    ('[stall]\nname = "X"\n[discovery]\nname = "a\\nb"\n', "discovery.name"),
    ('[stall]\nname = "X"\n[discovery]\ninterfaces = ["wl\\n0"]\n',
     "discovery.interfaces"),
    ('[stall]\nname = "X"\n[carbon.materials.paper]\nvalue = "1.0"\n'
     'source = "LCA\\nprinted twice"\n', "carbon.materials.paper.source"),
    ('[stall]\nname = "X"\n[contribution]\nproject = "Moor\\nBcc: x"\n',
     "contribution.project"),
    ('[stall]\nname = "X"\n[packaging.cup]\nlabel = "Cup\\n"\n',
     "packaging.cup.label"),
    ('[stall]\nname = "X"\n[email]\nhost = "127.0.0.1"\nfrom = "a@example.org"\n'
     'username = "u\\r\\nRCPT TO:<x@y>"\n', "email.username"),
])
def test_control_characters_in_text_are_refused(tmp_path: Path, text: str,
                                                key: str) -> None:
    err = refused(tmp_path, text)
    assert err.key == key
    assert "control characters" in err.why


def test_a_4000_digit_integer_is_not_echoed(tmp_path: Path) -> None:
    err = refused(tmp_path, f'[stall]\nname = "X"\n[http]\nport = {HUGE[:4000]}\n')
    assert err.key == "http.port"
    assert "too large" in err.why
    assert len(str(err)) < 200
    err = refused(tmp_path, '[stall]\nname = "X"\n[printer]\nport = "/dev/x"\n'
                  f'baudrate = {HUGE[:4000]}\n')
    assert (err.key, err.why) == ("printer.baudrate", "number too large")


def test_ordinary_unicode_text_is_still_accepted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, (
        '[stall]\nname = "Kräuter & Kerzen ☕"\naddress = "Straße 1, 79098 Freiburg"'
        '\nreceipt_footer = "Danke — bis bald!"\n')))
    assert config.stall.name == "Kräuter & Kerzen ☕"


@pytest.mark.parametrize(("text", "key", "hint"), [
    ('[stall]\nname = "X"\n[printer]\nprot = "/dev/x"\n', "printer.prot", "port"),
    ('[stall]\nname = "X"\n[printer]\nspeed = 9600\n', "printer.speed", ""),
    ('[stall]\nname = "X"\n[printer]\nport = "/dev/x"\nbaudrat = 9600\n',
     "printer.baudrat", "baudrate"),
    ('[stall]\nnmae = "X"\n', "stall.nmae", "name"),
    ('[stall]\nname = "X"\nidd = "a"\n', "stall.idd", "id"),
    ('[stall]\nname = "X"\n[email]\nhots = "127.0.0.1"\nfrom = "a@example.org"\n',
     "email.hots", "host"),
    ('[stall]\nname = "X"\n[email]\nsmtp_server = "h"\n', "email.smtp_server", ""),
])
def test_an_unknown_key_is_named_before_a_missing_one(tmp_path: Path, text: str,
                                                      key: str, hint: str) -> None:
    err = refused(tmp_path, text)
    assert err.key == key
    assert "not a known key" in err.why
    assert f"did you mean {hint}?" in err.why if hint else "did you mean" not in err.why


def test_a_very_long_unknown_key_is_cut_in_the_message(tmp_path: Path) -> None:
    err = refused(tmp_path, f'[stall]\nname = "X"\n{"k" * 5000} = 1\n')
    assert len(str(err)) < 300


@pytest.mark.parametrize("packaging", [
    '[packaging.cup]\nmaterial = "material:paper"\n',
    '[packaging.cup]\nmaterial = "material:paper"\nmass_g = 0\n',
])
def test_packaging_material_needs_a_mass(tmp_path: Path, packaging: str) -> None:
    err = refused(tmp_path, f'[stall]\nname = "X"\n{MATERIAL}{packaging}')
    assert err.key == "packaging.cup.mass_g"
    assert "required with material" in err.why


def test_packaging_material_with_a_mass_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, f'[stall]\nname = "X"\n{MATERIAL}'
                               '[packaging.cup]\nmaterial = "material:paper"\n'
                               'mass_g = 12\n'))
    assert config.billing.packaging["cup"].mass_g == 12


SECRET = "hunter2-sehr-geheim"


def email_config(tmp_path: Path, password_file: Path | str) -> str:
    return ('[stall]\nname = "X"\n[email]\nhost = "127.0.0.1"\n'
            f'from = "a@example.org"\npassword_file = "{password_file}"\n')


@pytest.mark.parametrize(("content", "why"), [
    (None, "not a file"),
    (b"\xff\xfe" + SECRET.encode() + b"\xe4\n", "not UTF-8"),
    (SECRET.encode() + b"\n" + b"x" * 5000, "larger than"),
    ("dir", "not a file"),
])
def test_email_password_file_is_checked_at_start(tmp_path: Path, content: object,
                                                 why: str) -> None:
    path = tmp_path / "smtp-password"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    err = refused(tmp_path, email_config(tmp_path, path))
    assert err.key == "email.password_file"
    assert why in err.why
    assert SECRET not in str(err)


def test_email_password_file_that_cannot_be_opened(tmp_path: Path) -> None:
    path = tmp_path / "smtp-password"
    path.symlink_to(path)  # a loop: open() fails even for root
    err = refused(tmp_path, email_config(tmp_path, path))
    assert err.key == "email.password_file"


def test_a_good_password_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "smtp-password"
    path.write_text(SECRET + "\n", encoding="utf-8")
    config = load_config(write(tmp_path, email_config(tmp_path, path)))
    assert config.email is not None
    assert config.email.password() == SECRET


@pytest.mark.parametrize("text", [
    f'[stall]\nname = "X"\n[carbon]\nusd_per_unit = "{HUGE}"\n',
    '[stall]\nname = "S3\\nBcc: evil@x.org"\n',
    '[stall]\nname = "X"\n[printer]\nprot = "x"\n',
    '[stall]\nname = "X"\n[email]\nhost = "h"\nfrom = "a@example.org"\n'
    'password_file = "missing"\n',
])
def test_serve_exits_2_with_one_line_before_opening_anything(tmp_path: Path,
                                                             text: str) -> None:
    state = tmp_path / "state"
    config = write(tmp_path, text + f'[state]\ndir = "{state}"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("stallbox: config: ")
    assert not state.exists()
