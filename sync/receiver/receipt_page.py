"""The receiver's public receipt check page: plain HTML, no script, no account."""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from daemon.trust.excerpt import MAX_TEXT

CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Check a receipt</title>
<style>body{{font:16px/1.4 system-ui,sans-serif;max-width:36rem;margin:2rem auto;
padding:0 1rem}}textarea{{width:100%}}.ok{{color:#075}}.bad{{color:#a00}}</style>
</head><body><main>
<h1>Check a receipt</h1>
<p>Type or paste the text printed under the receipt's QR code. The billing
pipeline checks its signature against the stall's certified keys and the sale
it received.</p>
{verdict}
<form method="post" action="/verify">
<label for="receipt">Receipt code</label>
<textarea id="receipt" name="receipt" rows="4" maxlength="{max_text}"
 required>{text}</textarea>
<p><button type="submit">Check</button></p>
</form></main></body></html>
"""


def render(result: dict[str, Any] | None, text: str, error: str, *,
           status: int = 200) -> web.Response:
    """Render the check page with a verdict or an error."""
    body = _PAGE.format(verdict=_verdict(result, error), text=escape(text),
                        max_text=MAX_TEXT)
    return web.Response(text=body, status=status, content_type="text/html",
                        headers={"Content-Security-Policy": CSP,
                                 "X-Content-Type-Options": "nosniff"})


def _verdict(result: dict[str, Any] | None, error: str) -> str:
    if error:
        return f'<p class="bad" role="alert">{escape(error)}</p>'
    if result is None:
        return ""
    word, css = ("Genuine", "ok") if result["genuine"] else ("Not genuine", "bad")
    lines = [f'<p class="{css}" role="status"><strong>{word}:</strong> '
             f'{escape(result["reason"])}</p>']
    sale = result["sale"]
    if sale and result["genuine"]:
        total = f'{sale["total_minor"] / 100:.2f} {escape(sale["currency"])}'
        lines.append(f'<dl><dt>Sale</dt><dd>No. {sale["seq"]}</dd><dt>Time (UTC)'
                     f'</dt><dd>{escape(sale["ts"])}</dd><dt>Total</dt>'
                     f'<dd>{total}</dd></dl>')
    return "\n".join(lines)
