"""mDNS discovery: interface choice, name conflicts, address changes, in a netns.

The mDNS tests run in a network namespace each test creates (`unshare --net`)
with only its own loopback, so no packet reaches the machine's real network.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import ifaddr
import pytest

from daemon import discovery
from daemon.discovery import Advert, Announcer, allowed_addresses, service_infos

REPO = Path(__file__).resolve().parent.parent
SCENARIO_TIMEOUT_S = 60.0
SEE_WITHIN_S = 10.0
# Loopback in a fresh namespace is down and has no multicast route.
NETNS_SETUP = ("ip link set lo up && ip link set lo multicast on && "
               "ip route add 224.0.0.0/4 dev lo && exec ")


def _adapter(name: str, *ips: str | tuple[str, int, int]) -> ifaddr.Adapter:
    return ifaddr.Adapter(name, name, [ifaddr.IP(ip, 24, name) for ip in ips])


ADAPTERS = [
    _adapter("lo", "127.0.0.1", ("::1", 0, 0)),
    _adapter("wlan0", "192.168.4.20", ("fe80::1", 0, 3), ("2001:db8::20", 0, 0)),
    _adapter("docker0", "172.17.0.1"),
    _adapter("br-1a2b", "172.18.0.1"),
    _adapter("eth0", "10.0.0.5"),
]


def test_default_skips_loopback_bridges_and_link_local() -> None:
    assert allowed_addresses(ADAPTERS, ()) == ["10.0.0.5", "192.168.4.20",
                                               "2001:db8::20"]


def test_configured_interfaces_only() -> None:
    assert allowed_addresses(ADAPTERS, ("wlan0",)) == ["192.168.4.20", "2001:db8::20"]
    assert allowed_addresses(ADAPTERS, ("wlan9",)) == []


def test_renamed_advert_has_distinct_name_and_host() -> None:
    advert = Advert("Kräuter & Kerzen", 8080, "stall-1", "0.1.0", "stallbox", "a1b2c3")
    plain = service_infos(advert, ["192.168.4.20"], renamed=False)
    renamed = service_infos(advert, ["192.168.4.20"], renamed=True)
    assert [i.name for i in plain] == ["Kräuter & Kerzen._http._tcp.local.",
                                       "Kräuter & Kerzen._stallbox._tcp.local."]
    assert renamed[1].name == "Kräuter & Kerzen (a1b2c3)._stallbox._tcp.local."
    assert (plain[0].server, renamed[0].server) == ("stallbox.local.",
                                                    "stallbox-a1b2c3.local.")
    txt = renamed[1].decoded_properties
    assert txt == {"stall_id": "stall-1", "version": "0.1.0", "api": "/api/v1",
                   "path": "/"}


def _in_netns(scenario: str) -> dict[str, object]:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("unshare and ip are needed (util-linux, iproute2)")
    code = f"import asyncio, json; from tests.test_discovery import {scenario}; " \
           f"print(json.dumps(asyncio.run({scenario}())))"
    command = NETNS_SETUP + f"{sys.executable} -c '{code}'"
    done = subprocess.run(["unshare", "--net", "sh", "-c", command], cwd=REPO,
                          capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S)
    if "Operation not permitted" in done.stderr and done.returncode:
        pytest.skip("cannot create a network namespace here: " + done.stderr[:200])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


async def _browse(seconds: float) -> list[str]:
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    seen: list[str] = []

    def changed(name: str, state_change: ServiceStateChange, **_: object) -> None:
        if state_change is ServiceStateChange.Added:
            seen.append(name)

    zc = AsyncZeroconf(interfaces=["127.0.0.1"])
    browser = AsyncServiceBrowser(zc.zeroconf, [discovery.STALLBOX_TYPE],
                                  handlers=[lambda **kw: changed(**kw)])
    await asyncio.sleep(seconds)
    await browser.async_cancel()
    await zc.async_close()
    return sorted(seen)


async def two_boxes_one_name() -> dict[str, object]:
    """Two boxes from the same image on one link; a tablet browses."""
    boxes = [Announcer(Advert("Stand", 8080, "stall-1", "0.1.0", "stallbox", s),
                       interfaces=("lo",)) for s in ("aaaaaa", "bbbbbb")]
    boxes[0].start()
    await asyncio.wait_for(boxes[0].changed.wait(), SEE_WITHIN_S)
    boxes[1].start()
    await asyncio.wait_for(boxes[1].changed.wait(), SEE_WITHIN_S)
    loop = asyncio.get_running_loop()
    started = loop.time()
    seen = await _browse(2.0)
    result = {"names": [box.names for box in boxes], "seen": seen,
              "browse_s": loop.time() - started}
    for box in boxes:
        await box.stop()
    return result


def test_two_boxes_with_one_name_are_both_found() -> None:
    result = _in_netns("two_boxes_one_name")
    first, second = result["names"]  # type: ignore[misc]
    assert first[1] == "Stand._stallbox._tcp.local."
    assert second[1] == "Stand (bbbbbb)._stallbox._tcp.local."
    assert result["seen"] == ["Stand (bbbbbb)._stallbox._tcp.local.",
                              "Stand._stallbox._tcp.local."]


async def address_change() -> dict[str, object]:
    """An address added later is announced, without restarting the daemon."""
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    discovery.RESCAN_INTERVAL_S = 0.2
    box = Announcer(Advert("Stand", 8080, "stall-1", "0.1.0", "stallbox", "aaaaaa"),
                    interfaces=("lo",))
    box.start()
    await asyncio.wait_for(box.changed.wait(), SEE_WITHIN_S)
    before = list(box.addresses)
    box.changed.clear()
    proc = await asyncio.create_subprocess_exec(
        "ip", "addr", "add", "127.0.0.7/8", "dev", "lo")
    await proc.wait()
    await asyncio.wait_for(box.changed.wait(), SEE_WITHIN_S)
    zc = AsyncZeroconf(interfaces=["127.0.0.1"])
    info = AsyncServiceInfo(discovery.STALLBOX_TYPE, box.names[1])
    await info.async_request(zc.zeroconf, 3000)
    await zc.async_close()
    await box.stop()
    return {"before": before, "after": box.addresses,
            "resolved": sorted(info.parsed_addresses())}


def test_address_added_later_is_announced() -> None:
    result = _in_netns("address_change")
    assert result["before"] == ["127.0.0.1", "::1"]
    assert "127.0.0.7" in result["after"]  # type: ignore[operator]
    assert "127.0.0.7" in result["resolved"]  # type: ignore[operator]


def test_discovery_config_is_checked(tmp_path: Path) -> None:
    from daemon.config import ConfigError
    from tests.conftest import make_config

    config = make_config(tmp_path, discovery={"enabled": True, "interfaces": ["wlan0"]})
    assert (config.discovery.enabled, config.discovery.interfaces) == (True, ("wlan0",))
    assert make_config(tmp_path).discovery.enabled is False
    with pytest.raises(ConfigError, match="discovery.interfaces"):
        make_config(tmp_path, discovery={"interfaces": "wlan0"})
    with pytest.raises(ConfigError, match="discovery.interfaces"):
        make_config(tmp_path, discovery={"interfaces": [""]})


def test_example_config_turns_discovery_on() -> None:
    from daemon.config import load_config

    example = load_config(REPO / "daemon" / "stallbox.example.toml")
    assert example.discovery.enabled


async def test_daemon_starts_its_announcer_on_a_lan_host(tmp_path: Path) -> None:
    """The installed default (a LAN host, discovery on) starts the announcer.

    Booting the unit under systemd-nspawn found the server calling the device
    key's public bytes (a property) and exiting at once. The interface named
    here does not exist, so nothing is announced anywhere.
    """
    from daemon.keys.device import DeviceIdentity
    from daemon.server import _start_discovery
    from tests.conftest import make_config

    config = make_config(tmp_path, http={"host": "0.0.0.0"},
                         discovery={"enabled": True, "interfaces": ["stallbox-none0"]})
    announcer = await _start_discovery(config, 8080)
    assert announcer is not None
    try:
        key = DeviceIdentity.load_or_create(tmp_path).public_bytes
        assert announcer.advert.suffix == discovery.device_suffix(key)
    finally:
        await announcer.stop()
