"""Announce the till pages by mDNS/DNS-SD so tablets find the box (RFC 6762/6763).

Two services point at the HTTP port: ``_http._tcp`` for any browser, and
``_stallbox._tcp`` whose TXT record carries the stall id, version and API path.
Only addresses on allowed interfaces are announced (default: all but loopback
and container bridges). Interfaces are re-read every RESCAN_INTERVAL_S: a
network that comes up later is announced then, a changed address withdraws the
old records and announces the new ones.

Two boxes from one image share a name; the second one's probe (RFC 6762 §8.1)
finds the first, and it then takes the name and host name with a suffix made
from its device key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ifaddr
from zeroconf import IPVersion, NonUniqueNameException, ServiceInfo
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOG = logging.getLogger(__name__)
HTTP_TYPE = "_http._tcp.local."
STALLBOX_TYPE = "_stallbox._tcp.local."
API_PATH = "/api/v1"
RESCAN_INTERVAL_S = 10.0
# How long to ask whether another box already answers for our name.
NAME_CHECK_TIMEOUT_MS = 1500
# Interface name prefixes of loopback, container and VM bridges: tablets are
# never behind them, and announcing them would hand out unreachable addresses.
EXCLUDED_PREFIXES = ("lo", "docker", "br-", "veth", "virbr", "lxcbr", "lxdbr",
                     "cni", "podman", "flannel", "zt")
MAX_LABEL_CHARS = 63  # RFC 6763 §4.1.1: instance names are one DNS label


@dataclass(frozen=True, slots=True)
class Advert:
    """What to announce: the instance, its port and its TXT facts."""

    name: str
    port: int
    stall_id: str
    version: str
    host: str  # host label without ".local."
    suffix: str  # taken on a name conflict, e.g. from the device key


def device_suffix(public_key: bytes) -> str:
    """Return a short, stable suffix for names from the device's public key."""
    return hashlib.sha256(public_key).hexdigest()[:6]


def allowed_addresses(adapters: Iterable[ifaddr.Adapter],
                      interfaces: Sequence[str]) -> list[str]:
    """Return the addresses to announce on, from named or default interfaces."""
    found: set[str] = set()
    for adapter in adapters:
        name = adapter.nice_name
        if interfaces and name not in interfaces:
            continue
        if not interfaces and name.startswith(EXCLUDED_PREFIXES):
            continue
        found.update(_usable(ip.ip) for ip in adapter.ips)
    found.discard("")
    return sorted(found)


def _usable(ip: str | tuple[str, int, int]) -> str:
    # Link-local IPv6 needs a scope id that DNS-SD answers cannot carry.
    text = ip if isinstance(ip, str) else ip[0]
    address = ipaddress.ip_address(text)
    return "" if address.version == 6 and address.is_link_local else text


def service_infos(advert: Advert, addresses: Sequence[str],
                  renamed: bool) -> list[ServiceInfo]:
    """Build the _http._tcp and _stallbox._tcp records for one advert."""
    name = advert.name
    host = advert.host
    if renamed:
        name = f"{name[:MAX_LABEL_CHARS - 9]} ({advert.suffix})"
        host = f"{host}-{advert.suffix}"
    packed = [socket.inet_pton(_family(a), a) for a in addresses]
    txt = {"stall_id": advert.stall_id, "version": advert.version,
           "api": API_PATH, "path": "/"}
    return [ServiceInfo(kind, f"{name}.{kind}", port=advert.port, addresses=packed,
                        server=f"{host}.local.", properties=props)
            for kind, props in ((HTTP_TYPE, {"path": "/"}), (STALLBOX_TYPE, txt))]


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


class Announcer:
    """Keep the adverts registered on the allowed interfaces' current addresses."""

    def __init__(self, advert: Advert, interfaces: Sequence[str] = ()) -> None:
        self.advert = advert
        self.interfaces = tuple(interfaces)
        self.addresses: list[str] = []
        self.names: list[str] = []
        self._zc: AsyncZeroconf | None = None
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    def start(self) -> None:
        """Start watching interfaces and announcing on the running loop."""
        self._task = asyncio.create_task(self._run(), name="mdns-announcer")

    async def stop(self) -> None:
        """Withdraw the adverts (goodbye packets) and stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._withdraw()

    async def _run(self) -> None:
        while True:
            try:
                await self._rescan()
            except (OSError, NonUniqueNameException) as err:
                # A vanished interface or a name fight must not stop selling.
                _LOG.warning("mDNS announcement failed, retrying: %s", err)
                await self._withdraw()
            await asyncio.sleep(RESCAN_INTERVAL_S)

    async def _rescan(self) -> None:
        adapters = await asyncio.to_thread(ifaddr.get_adapters)
        addresses = allowed_addresses(adapters, self.interfaces)
        if addresses == self.addresses and (self._zc or not addresses):
            return
        await self._withdraw()
        if addresses:
            await self._announce(addresses)
        self.addresses = addresses
        self.changed.set()

    async def _announce(self, addresses: list[str]) -> None:
        v6 = any(":" in a for a in addresses)
        version = IPVersion.All if v6 else IPVersion.V4Only
        self._zc = AsyncZeroconf(interfaces=addresses, ip_version=version)
        try:
            if await self._name_taken(self._zc, addresses):
                raise NonUniqueNameException
            self.names = await self._register(self._zc, addresses, renamed=False)
        except NonUniqueNameException:
            _LOG.info("mDNS name %r is taken; adding suffix %s", self.advert.name,
                      self.advert.suffix)
            self.names = await self._register(self._zc, addresses, renamed=True)
        _LOG.info("announced %s on %s", self.names[0], ", ".join(addresses))

    async def _name_taken(self, zc: AsyncZeroconf, addresses: list[str]) -> bool:
        # python-zeroconf's probe only sees names already in its cache, so a box
        # that announced before we started would go unnoticed: ask outright.
        ours = service_infos(self.advert, addresses, renamed=False)[1]
        other = AsyncServiceInfo(ours.type, ours.name)
        return await other.async_request(zc.zeroconf, NAME_CHECK_TIMEOUT_MS)

    async def _register(self, zc: AsyncZeroconf, addresses: list[str],
                        renamed: bool) -> list[str]:
        await zc.async_unregister_all_services()
        infos = service_infos(self.advert, addresses, renamed)
        for info in infos:
            await (await zc.async_register_service(info))
        return [info.name for info in infos]

    async def _withdraw(self) -> None:
        zc, self._zc = self._zc, None
        self.names = []
        if zc is not None:
            await zc.async_unregister_all_services()
            await zc.async_close()
