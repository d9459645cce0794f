#!/usr/bin/env python3
"""Take the guides' screenshots from a real daemon on loopback (#9).

Starts `stallbox serve` with the demo catalog, the simulated printer and the
simulated ZVT terminal on pseudo-terminals, drives Debian's chromium through a
cash sale, a card sale and a printer out of paper, and renders the first
receipt the simulated printer decoded as a PNG.

    python scripts/doc_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from device.sim.printer import SimulatedPrinter  # noqa: E402
from device.sim.zvt_terminal import ZvtSimBehaviour, ZvtTerminalSim  # noqa: E402
from scripts.daemonproc import DaemonProcess, run_cli, write_config  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
TABLET = {"width": 1280, "height": 800}
MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
DEMO_CSV = REPO / "daemon" / "catalog" / "demo.csv"
CART = ("DES-CREME-BRULEE", "FEI-BAERLAUCH", "BRO-SAUERTEIG")
STALL = ('[stall]\nname = "Kräuter & Kerzen"\naddress = "Marktplatz 1, 79098 '
         'Freiburg"\nvat_id = "DE000000000"\n')


def config_text(state: Path, printer: str, terminal: str) -> str:
    """Return a TOML config for the daemon with both simulated devices."""
    return (f'{STALL}[http]\nhost = "127.0.0.1"\nport = 0\n[state]\ndir = "{state}"\n'
            f'[printer]\nport = "{printer}"\nbaudrate = 115200\n'
            f'[terminal]\nprotocol = "zvt"\nport = "{terminal}"\n')


async def pair(url: str, code: str) -> str:
    """Pair a tablet through the API and return its token."""
    async with aiohttp.ClientSession() as session:
        resp = await session.post(url + "api/v1/pair",
                                  json={"code": code, "name": "Till 1"})
        return str((await resp.json())["token"])


def fill_cart(page: Page, url: str) -> None:
    """Put the demo cart on the till."""
    page.goto(url + "till")
    for sku in CART:
        page.click(f"button.product[value='{sku}']")
        page.wait_for_load_state("networkidle")


def shoot(page: Page, out: Path, name: str) -> None:
    """Save a screenshot of the visible page."""
    page.screenshot(path=str(out / name))
    print(f"wrote {out / name}", file=sys.stderr)


def cash_sale(page: Page, url: str, out: Path) -> None:
    """Till with a cart, then the change screen after a 20 € note."""
    fill_cart(page, url)
    shoot(page, out, "cashier-till.png")
    page.click("button[name='quick'][value='2000']")
    page.wait_for_selector("#change")
    shoot(page, out, "cashier-change.png")


def card_sale(page: Page, url: str, out: Path) -> None:
    """Card checkout while the terminal asks for the PIN, then approved."""
    fill_cart(page, url)
    page.click("#pay-card")
    page.wait_for_selector("#prompt:has-text('PIN')", timeout=20_000)
    shoot(page, out, "cashier-card-pin.png")
    page.wait_for_selector("#new-sale", timeout=30_000)
    shoot(page, out, "cashier-card-approved.png")


def printer_problem(page: Page, url: str, out: Path,
                    printer: SimulatedPrinter) -> None:
    """Sell with the paper out: the badge turns, the printer page says what to do."""
    printer.set_paper_out(True)
    fill_cart(page, url)
    page.click("button[name='quick'][value='exact']")
    page.wait_for_selector("#change")
    page.goto(url + "till")
    page.wait_for_selector("#printer-badge:has-text('paper')", timeout=20_000)
    shoot(page, out, "cashier-printer-badge.png")
    page.goto(url + "printer")
    shoot(page, out, "cashier-printer-page.png")
    printer.set_paper_out(False)


def render_receipt(text: str, path: Path) -> None:
    """Draw receipt text in a monospace font on a paper-coloured strip."""
    font = ImageFont.truetype(MONO, 18)
    lines = text.rstrip("\n").splitlines()
    width = max(len(line) for line in lines) * 11 + 48
    image = Image.new("RGB", (width, len(lines) * 24 + 48), "#fdfcf7")
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((24, 24 + row * 24), line, fill="#1a1a1a", font=font)
    image.save(path, optimize=True)
    print(f"wrote {path}", file=sys.stderr)


def browse(url: str, token: str, out: Path, printer: SimulatedPrinter) -> None:
    """Run the three scenes in one chromium."""
    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM,
                                       args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport=TABLET, device_scale_factor=1)
        context.add_cookies([{"name": "stallbox_token", "value": token,
                              "url": url}])
        page = context.new_page()
        cash_sale(page, url, out)
        card_sale(page, url, out)
        printer_problem(page, url, out, printer)
        browser.close()


def run(out: Path, root: Path) -> None:
    """Start devices and daemon, take the screenshots, render the first receipt."""
    printer = SimulatedPrinter(baudrate=115200, link_path=root / "printer-port")
    terminal = ZvtTerminalSim(root / "terminal-port",
                              ZvtSimBehaviour(step_delay_s=1.5))
    printer.start()
    terminal.start()
    config = write_config(root / "stallbox.toml", root / "state")
    config.write_text(config_text(root / "state", printer.port_path,
                                  str(terminal.link_path)), encoding="utf-8")
    daemon = DaemonProcess(config)
    try:
        state = str(root / "state")
        run_cli("import-catalog", str(DEMO_CSV), "--state", state)
        code = run_cli("pair", "--state", state).stdout.split()[-1]
        browse(daemon.url, asyncio.run(pair(daemon.url, code)), out, printer)
        render_receipt(printer.wait_for_receipts(1, timeout_s=10)[0],
                       out / "receipt.png")
    finally:
        daemon.terminate()
        terminal.stop()
        printer.stop()


def main() -> int:
    """Parse arguments and take the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stallbox-shots-") as tmp:
        run(args.out, Path(tmp))
    print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
