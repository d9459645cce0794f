#!/usr/bin/env bash
# Install Stallbox as a systemd service on Debian / Raspberry Pi OS (as root).
#
#   scripts/install.sh [--printer VID:PID[:SERIAL]] [--terminal VID:PID[:SERIAL]]
#   scripts/install.sh --uninstall       # keeps /etc/stallbox and /var/lib/stallbox
#   scripts/install.sh --root DIR ...    # install into DIR instead of / (tests)
#
# Idempotent: running it again upgrades the virtual environment and the unit,
# and never overwrites /etc/stallbox/stallbox.toml. With --root, nothing outside
# DIR is touched and systemd/udev are not asked to reload; the virtual
# environment inside DIR is for inspection, not for copying elsewhere.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
ROOT=""
PYTHON="${PYTHON:-python3}"
UNINSTALL=0
PRINTER=""
TERMINAL=""
USER_NAME="stallbox"
VENV="/opt/stallbox"
CONF_DIR="/etc/stallbox"
STATE_DIR="/var/lib/stallbox"
UNIT="/etc/systemd/system/stallbox.service"
TMPFILES="/etc/tmpfiles.d/stallbox.conf"
RULES="/etc/udev/rules.d/70-stallbox.rules"
RULES_MARKER="# --- lines below are written by scripts/install.sh ---"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --root) ROOT="$(realpath -m "${2:?--root needs a directory}")"; shift ;;
            --uninstall) UNINSTALL=1 ;;
            --printer) PRINTER="${2:?--printer needs VID:PID[:SERIAL]}"; shift ;;
            --terminal) TERMINAL="${2:?--terminal needs VID:PID[:SERIAL]}"; shift ;;
            -h|--help) usage 0 ;;
            *) echo "install.sh: unknown argument $1" >&2; usage ;;
        esac
        shift
    done
    [ "$ROOT" = "/" ] && ROOT=""
    if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then die "run as root (or use --root DIR)"; fi
    if [ -n "$ROOT" ] && [ ! -d "$ROOT/etc" ]; then die "$ROOT/etc does not exist"; fi
    if [ -n "$PRINTER" ]; then udev_line printer "$PRINTER" >/dev/null; fi
    if [ -n "$TERMINAL" ]; then udev_line terminal "$TERMINAL" >/dev/null; fi
    return 0
}

# On the live system, systemd and udev are told about changed files.
live() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }
prefix_args() { if [ -n "$ROOT" ]; then echo "--prefix $ROOT"; fi; }
gid_of() { awk -F: -v g="$1" '$1 == g { print $3 }' "$ROOT/etc/group"; }
uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "$ROOT/etc/passwd"; }

ensure_user() {
    grep -q '^dialout:' "$ROOT/etc/group" || die "no dialout group in $ROOT/etc/group"
    if [ -z "$(uid_of "$USER_NAME")" ]; then
        # shellcheck disable=SC2046
        useradd $(prefix_args) --system --user-group --groups dialout \
            --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
            --comment "Stallbox point of sale" "$USER_NAME"
        say "created system user $USER_NAME in group dialout"
    else
        # shellcheck disable=SC2046
        usermod $(prefix_args) --append --groups dialout "$USER_NAME"
    fi
}

install_venv() {
    if [ ! -x "$ROOT$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$ROOT$VENV"
    fi
    # pip builds inside the tree it is given: build from a private copy, so a
    # read-only checkout works and a build/ left by an interrupted run in the
    # checkout cannot break this one.
    local copy
    copy="$(mktemp -d)"
    tar -C "$SRC" --exclude=./build --exclude=./.venv --exclude=./.git \
        --exclude='*.egg-info' -cf - . | tar -C "$copy" -xf -
    if ! "$ROOT$VENV/bin/python" -m pip install -q --disable-pip-version-check "$copy"; then
        rm -rf "$copy"
        die "pip could not install Stallbox from $SRC"
    fi
    rm -rf "$copy"
    [ -x "$ROOT$VENV/bin/stallbox" ] || die "pip installed no $VENV/bin/stallbox"
    if [ -z "$ROOT" ]; then
        "$VENV/bin/stallbox" --help >/dev/null || die "$VENV/bin/stallbox does not run"
    fi
    say "installed stallbox into $VENV"
}

install_config() {
    local gid conf="$ROOT$CONF_DIR/stallbox.toml"
    gid="$(gid_of "$USER_NAME")"
    install -d -m 0755 "$ROOT$CONF_DIR"
    if [ -e "$conf" ]; then
        say "kept $CONF_DIR/stallbox.toml"
        return
    fi
    # The example names a /dev/serial/by-id/ port; installed, the printer is
    # the stable name the udev rules give it.
    sed 's|^port = "/dev/serial/by-id/[^"]*"|port = "/dev/stallbox/printer"|' \
        "$SRC/daemon/stallbox.example.toml" > "$conf.tmp"
    chown "0:$gid" "$conf.tmp"
    chmod 0640 "$conf.tmp"
    mv "$conf.tmp" "$conf"
    say "wrote $CONF_DIR/stallbox.toml from the example: edit it"
}

install_state() {
    install -d -m 0700 -o "$(uid_of "$USER_NAME")" -g "$(gid_of "$USER_NAME")" \
        "$ROOT$STATE_DIR"
}

udev_line() {
    local name="$1" spec="$2" vid pid serial extra=""
    IFS=: read -r vid pid serial <<< "$spec"
    [[ "$vid" =~ ^[0-9a-fA-F]{4}$ && "$pid" =~ ^[0-9a-fA-F]{4}$ ]] \
        || die "--$name: want VID:PID[:SERIAL] in hex, e.g. 0403:6001; got $spec"
    if [ -n "$serial" ]; then
        [[ "$serial" =~ ^[A-Za-z0-9._-]+$ ]] || die "--$name: odd serial $serial"
        extra=", ATTRS{serial}==\"$serial\""
    fi
    printf 'SUBSYSTEM=="tty", ATTRS{idVendor}=="%s", ATTRS{idProduct}=="%s"%s, ' \
        "${vid,,}" "${pid,,}" "$extra"
    printf 'SYMLINK+="stallbox/%s", GROUP="dialout", MODE="0660", TAG+="systemd"\n' \
        "$name"
}

install_udev() {
    local rules="$ROOT$RULES"
    install -d -m 0755 "$(dirname "$rules")"
    if [ -e "$rules" ] && [ -z "$PRINTER$TERMINAL" ]; then
        say "kept $RULES"
        return
    fi
    {
        cat "$SRC/systemd/70-stallbox.rules"
        if [ -n "$PRINTER" ]; then udev_line printer "$PRINTER"; fi
        if [ -n "$TERMINAL" ]; then udev_line terminal "$TERMINAL"; fi
    } > "$rules.tmp"
    chmod 0644 "$rules.tmp"
    mv "$rules.tmp" "$rules"
    say "wrote $RULES"
}

install_units() {
    install -D -m 0644 "$SRC/systemd/stallbox.service" "$ROOT$UNIT"
    install -D -m 0644 "$SRC/systemd/stallbox-tmpfiles.conf" "$ROOT$TMPFILES"
    if live; then
        systemctl daemon-reload
        udevadm control --reload
        udevadm trigger --subsystem-match=tty
    fi
}

do_install() {
    ensure_user
    install_venv
    install_config
    install_state
    install_udev
    install_units
    say "done. Next: edit $CONF_DIR/stallbox.toml, then systemctl enable --now stallbox"
}

do_uninstall() {
    if live; then systemctl disable --now stallbox.service || true; fi
    rm -f "$ROOT$UNIT" "$ROOT$TMPFILES" "$ROOT$RULES"
    rm -rf "$ROOT$VENV"
    if [ -n "$(uid_of "$USER_NAME")" ]; then
        # shellcheck disable=SC2046
        userdel $(prefix_args) "$USER_NAME"
    fi
    if live; then systemctl daemon-reload; udevadm control --reload; fi
    say "removed; kept $CONF_DIR and $STATE_DIR"
}

parse_args "$@"
if [ "$UNINSTALL" = 1 ]; then do_uninstall; else do_install; fi
