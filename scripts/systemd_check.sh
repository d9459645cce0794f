#!/usr/bin/env bash
# Boot a Debian 12 container with a real systemd (systemd-nspawn), install
# Stallbox in it with scripts/install.sh, and check the unit as systemd runs it:
#
#   sudo scripts/systemd_check.sh [--tree DIR] [--mirror URL]
#
# Checks: the unit starts and READY=1 reaches systemd (active/running with the
# daemon's STATUS= line); /healthz answers; a loop that stops answering
# (SIGSTOP) is killed by the watchdog and restarted; SIGTERM (systemctl stop)
# ends it cleanly with exit 0 and a journaled shutdown; a broken config fails
# with the config error in the journal and stops after StartLimitBurst tries;
# `systemd-analyze security` scores it. The container has its own network
# namespace with only loopback, so nothing is announced on the host's LAN.
#
# DIR (default /var/tmp/stallbox-nspawn) is made with debootstrap the first
# time (a few minutes, needs the Debian mirror) and reused afterwards.
# Exit 0: every check passed; 1: a check failed; 77: this host cannot run it
# (not root, no systemd-nspawn or debootstrap, or the container does not boot).
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
TREE="/var/tmp/stallbox-nspawn"
MIRROR="http://deb.debian.org/debian"
MACHINE="stallbox-check"
WATCHDOG_WAIT_S=60
FAILED=0

while [ $# -gt 0 ]; do
    case "$1" in
        --tree) TREE="${2:?--tree needs a directory}"; shift ;;
        --mirror) MIRROR="${2:?--mirror needs a URL}"; shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "systemd_check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

cannot() { echo "systemd_check.sh: this host cannot run the check: $*" >&2; exit 77; }
say() { echo "== $*"; }
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILED=1; }

[ "$(id -u)" = 0 ] || cannot "needs root"
command -v systemd-nspawn >/dev/null || cannot "no systemd-nspawn (apt install systemd-container)"
command -v nsenter >/dev/null || cannot "no nsenter (util-linux)"

# --- the tree -----------------------------------------------------------------
mkdir -p "$(dirname "$TREE")"
exec 9>"$TREE.lock"
flock 9  # one check at a time per tree
if [ ! -x "$TREE/usr/lib/systemd/systemd" ]; then
    command -v debootstrap >/dev/null || cannot "no debootstrap to make $TREE"
    say "debootstrap bookworm into $TREE (first run only)"
    rm -rf "$TREE"
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,python3,python3-venv,udev \
        bookworm "$TREE" "$MIRROR" >"$TREE.debootstrap.log" 2>&1 \
        || cannot "debootstrap failed, see $TREE.debootstrap.log"
fi

# --- install with scripts/install.sh inside the tree --------------------------
say "install Stallbox from $SRC with scripts/install.sh"
rm -rf "$TREE/opt/stallbox-src"
mkdir -p "$TREE/opt/stallbox-src"
tar -C "$SRC" --exclude=./.git --exclude=./build --exclude='*.egg-info' \
    --exclude=__pycache__ -cf - . | tar -xf - -C "$TREE/opt/stallbox-src"
# pip inside the tree trusts what the host trusts, and uses the host's wheels.
NSPAWN_ARGS=(-q -D "$TREE" --register=no --keep-unit --resolv-conf=copy-host)
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    NSPAWN_ARGS+=(--bind-ro=/etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt
                  --setenv=PIP_CERT=/etc/ssl/host-ca.crt)
fi
if [ -d /opt/wheels ]; then
    NSPAWN_ARGS+=(--bind-ro=/opt/wheels --setenv=PIP_FIND_LINKS=/opt/wheels)
fi
systemd-nspawn "${NSPAWN_ARGS[@]}" bash -c \
    'cd /opt/stallbox-src && bash scripts/install.sh && systemctl enable stallbox' \
    2>&1 | grep -v '^Attempted to remove disk file system' || true
[ -x "$TREE/opt/stallbox/bin/stallbox" ] || { echo "FAIL install.sh"; exit 1; }
# The host's network is not the container's: nothing waits for it.
systemd-nspawn "${NSPAWN_ARGS[@]}" systemctl mask systemd-networkd-wait-online.service \
    >/dev/null 2>&1 || true

# --- boot ---------------------------------------------------------------------
say "boot the tree with systemd-nspawn --boot"
LOG="$(mktemp)"
systemd-nspawn -D "$TREE" --boot --register=no --keep-unit --private-network \
    --machine="$MACHINE" --console=read-only >"$LOG" 2>&1 &
NSPAWN=$!
LEADER=""
cleanup() {
    if [ -n "$LEADER" ] && kill -0 "$LEADER" 2>/dev/null; then
        nsenter -t "$LEADER" -a systemctl poweroff >/dev/null 2>&1 || true
    fi
    for _ in $(seq 30); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.5; done
    kill "$NSPAWN" 2>/dev/null || true
    rm -f "$LOG"
}
trap cleanup EXIT
for _ in $(seq 60); do
    LEADER="$(pgrep -P "$NSPAWN" -x systemd || true)"
    [ -n "$LEADER" ] && break
    kill -0 "$NSPAWN" 2>/dev/null || { cat "$LOG" >&2; cannot "the container did not boot"; }
    sleep 0.5
done
[ -n "$LEADER" ] || cannot "no systemd in the container after 30 s"
in_ct() { nsenter -t "$LEADER" -a "$@"; }
daemon_pid() {  # the daemon's pid on the host (MainPID is the container's)
    local main pid
    main="$(prop MainPID)"
    for pid in $(pgrep -f '/opt/stallbox/bin/stallbox serve' || true); do
        if [ "$(readlink "/proc/$pid/ns/pid")" = "$(readlink "/proc/$LEADER/ns/pid")" ] \
                && [ "$(awk '/^NSpid:/ { print $NF }' "/proc/$pid/status")" = "$main" ]; then
            echo "$pid"; return
        fi
    done
}
prop() { in_ct systemctl show -p "$1" --value stallbox; }
wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds
    local left=$(( $1 * 2 )); shift
    until "$@" >/dev/null 2>&1; do
        left=$((left - 1)); [ "$left" -gt 0 ] || return 1; sleep 0.5
    done
}
is_active() { [ "$(prop ActiveState)" = active ]; }
wait_for 60 is_active || true

# --- checks -------------------------------------------------------------------
say "systemctl status stallbox"
in_ct systemctl status stallbox --no-pager 2>&1 | head -7 || true
status="$(prop StatusText)"
if is_active && [ "$(prop SubState)" = running ] && [[ "$status" == "serving on "* ]]; then
    pass "Type=notify: active (running), READY=1 reached systemd, STATUS=$status"
else
    fail "not active/running with a STATUS= line (state $(prop ActiveState)/$(prop SubState), status '$status')"
fi
healthz='import json, urllib.request
print(json.load(urllib.request.urlopen("http://127.0.0.1:8080/healthz"))["status"])'
if answer="$(in_ct /opt/stallbox/bin/python -c "$healthz" 2>&1)"; then
    pass "/healthz answers: $answer"
else
    fail "/healthz: $answer"
fi

say "watchdog: SIGSTOP the daemon (WatchdogSec=$(prop WatchdogUSec))"
old="$(daemon_pid)"
[ -n "$old" ] || fail "no daemon process found"
kill -STOP "$old"
started="$(date +%s)"
restarted() { is_active && [ -n "$(daemon_pid)" ] && [ "$(daemon_pid)" != "$old" ]; }
if wait_for "$WATCHDOG_WAIT_S" restarted; then
    pass "watchdog killed the stopped daemon and systemd restarted it ($(( $(date +%s) - started )) s)"
    in_ct journalctl -u stallbox --no-pager -o cat --since "-${WATCHDOG_WAIT_S}s" 2>/dev/null \
        | grep -E 'Watchdog timeout|SIGABRT|Scheduled restart' | sed 's/^/    /' || true
else
    fail "no watchdog restart within $WATCHDOG_WAIT_S s"
    kill -CONT "$old" 2>/dev/null || true
fi
wait_for 30 is_active || true

say "SIGTERM: systemctl stop stallbox"
t0="$(date +%s.%N)"
in_ct systemctl stop stallbox
t1="$(date +%s.%N)"
if [ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ] \
        && in_ct journalctl -u stallbox --no-pager -o cat --since "-20s" \
           | grep -q 'shutdown journaled'; then
    pass "clean stop: exit 0, shutdown journaled, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
else
    fail "stop: Result=$(prop Result) ExecMainStatus=$(prop ExecMainStatus)"
fi

say "fatal config error"
conf="$TREE/etc/stallbox/stallbox.toml"
cp -p "$conf" "$conf.good"
sed -i 's/^port = 8080$/port = "eighty"/' "$conf"
in_ct systemctl start stallbox >/dev/null 2>&1 || true
gave_up() { [ "$(prop ActiveState)" = failed ]; }
if wait_for 60 gave_up && in_ct journalctl -u stallbox --no-pager -o cat --since "-60s" \
        | grep -q 'config: http.port'; then
    pass "config error: exit $(prop ExecMainStatus), reason in the journal, unit failed after $(prop NRestarts) restarts"
else
    fail "config error did not end in a failed unit with the reason logged"
fi
mv "$conf.good" "$conf"
in_ct systemctl reset-failed stallbox || true
if in_ct systemctl start stallbox && wait_for 30 is_active; then
    pass "starts again once the config is fixed"
else
    fail "start after restoring the config"
    in_ct journalctl -u stallbox --no-pager -o cat -n 20 | sed 's/^/    /'
fi

say "systemd-analyze security stallbox"
score="$(in_ct systemd-analyze security stallbox --no-pager 2>/dev/null | tail -1)"
echo "    $score"
case "$score" in
    *"exposure level"*" 0."*|*"exposure level"*" 1."*) pass "security: $score" ;;
    *) fail "security exposure above 2: $score" ;;
esac

exit "$FAILED"
