"""Incremental decoder of ESC/POS byte streams into text lines and events.

Pure and never raising: the simulated printer feeds it whatever arrives on the
line, in whatever pieces. Command lengths follow the Epson ESC/POS Application
Programming Guide (APG); image, barcode and 2-D code payloads are skipped by
their length fields without being buffered, so a hostile length costs time,
not memory. Unknown commands consume their introducer and one byte.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache

from device.printer.escpos import CODEPAGES

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
LF, CR, HT, FF, NUL = 0x0A, 0x0D, 0x09, 0x0C, 0x00
EOT = 0x04  # Epson APG, "DLE EOT n": real-time status request
TAB_WIDTH = 8
# A line longer than this without LF is emitted anyway, to bound memory.
MAX_LINE_CHARS = 4096
# NUL-terminated data (GS k m=0..6, ESC D) longer than this is cut short.
MAX_TERMINATED = 255
UNKNOWN_GLYPH = "?"

# Epson APG: "ESC t n" numbers beyond the ones we print with.
_EXTRA_PAGES: dict[int, str] = {
    13: "cp857", 15: "iso8859_7",
    21: "cp874", 32: "cp720", 33: "cp775", 34: "cp855", 35: "cp861", 36: "cp862",
    37: "cp864", 38: "cp869", 39: "iso8859_2", 44: "cp1125", 45: "cp1250",
    46: "cp1251", 47: "cp1253", 48: "cp1254", 49: "cp1255", 50: "cp1256",
    51: "cp1257", 52: "cp1258", 53: "kz1048",
}

# Fixed argument counts after ESC x (Epson APG command list).
_ESC_ARGS: dict[int, int] = {
    **dict.fromkeys(b" !%-3=?EGJMRTUVadertu{", 1),
    **dict.fromkeys(b"2<@LSimv\x0c", 0),
    **dict.fromkeys(b"$\\Bc", 2),
    ord("p"): 3,
    ord("W"): 8,
}
# Fixed argument counts after GS x.
_GS_ARGS: dict[int, int] = {
    **dict.fromkeys(b"!/BEHITabfhrw", 1),
    **dict.fromkeys(b"$LPW\\", 2),
    **dict.fromkeys(b":<", 0),
    ord("^"): 3,
    ord("z"): 3,
    ord("g"): 4,
}
# Fixed argument counts after FS x.
_FS_ARGS: dict[int, int] = {
    **dict.fromkeys(b"!-CW", 1),
    **dict.fromkeys(b"&.", 0),
    **dict.fromkeys(b"Sp", 2),
    ord("2"): 74,
}


@dataclass(frozen=True, slots=True)
class TextLine:
    """A printed line of text with the style it was printed in."""

    text: str
    bold: bool = False
    double_height: bool = False
    double_width: bool = False
    align: int = 0


@dataclass(frozen=True, slots=True)
class Feed:
    """Blank lines fed (ESC d, ESC J) beyond the line just printed."""

    lines: int


@dataclass(frozen=True, slots=True)
class Cut:
    """A paper cut, named after its command: gs_v, esc_i or esc_m."""

    command: str


@dataclass(frozen=True, slots=True)
class Init:
    """ESC @: the printer was initialised."""


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """DLE EOT n: the host asks for real-time status byte n."""

    n: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """A payload skipped by its length: image, barcode, 2-D code, glyphs."""

    command: str
    length: int


Event = TextLine | Feed | Cut | Init | StatusRequest | Skipped


@cache
def decode_table(esc_t: int) -> str:
    """Return the 256 characters that the bytes of code table n print as."""
    names = {number: name for name, number in CODEPAGES.items()} | _EXTRA_PAGES
    name = names.get(esc_t)
    chars = [chr(b) if 0x20 <= b < 0x7F else UNKNOWN_GLYPH for b in range(256)]
    if name is None:
        return "".join(chars)
    decoder = codecs.getdecoder(name)
    for b in range(0x20, 0x100):
        text, _ = decoder(bytes([b]), "replace")
        chars[b] = UNKNOWN_GLYPH if text == "\ufffd" else text
    return "".join(chars)


@dataclass(slots=True)
class _Style:
    bold: bool = False
    double_height: bool = False
    double_width: bool = False
    align: int = 0


@dataclass(slots=True)
class _Line:
    chars: list[str] = field(default_factory=list)
    width: int = 0
    style: _Style | None = None


class EscposDecoder:
    """Turn ESC/POS bytes, fed in any pieces, into events."""

    def __init__(self, default_codepage: int = 0) -> None:
        self._default_codepage = default_codepage
        self._buf = bytearray()
        self._skip = 0
        self._glyphs_left = 0
        self._glyph_rows = 0
        self._events: list[Event] = []
        self._reset()

    def _reset(self) -> None:
        self._style = _Style()
        self._table = decode_table(self._default_codepage)
        self._line = _Line()

    def feed(self, data: bytes) -> list[Event]:
        """Decode more bytes; return the events they complete."""
        self._buf += data
        pos = 0
        while True:
            step = self._step(pos)
            if step == 0:
                break
            pos += step
        del self._buf[:pos]
        events, self._events = self._events, []
        return events

    def flush(self) -> list[Event]:
        """Return the events so far, with a pending unterminated line as text."""
        self._end_line(force=False)
        events, self._events = self._events, []
        return events

    def _step(self, pos: int) -> int:
        available = len(self._buf) - pos
        if available <= 0:
            return 0
        if self._skip:
            taken = min(self._skip, available)
            self._skip -= taken
            return taken
        if self._glyphs_left:
            self._glyphs_left -= 1
            self._skip = self._glyph_rows * self._buf[pos]
            return 1
        byte = self._buf[pos]
        if byte >= 0x20:
            return self._text(pos)
        return self._control(pos, byte)

    def _text(self, pos: int) -> int:
        end = pos
        limit = len(self._buf)
        while end < limit and self._buf[end] >= 0x20:
            end += 1
        for byte in self._buf[pos:end]:
            self._put(self._table[byte])
        return end - pos

    def _put(self, char: str) -> None:
        line = self._line
        if line.style is None:
            line.style = replace(self._style)
        line.chars.append(char)
        line.width += len(char)
        if line.width >= MAX_LINE_CHARS:
            self._end_line(force=True)

    def _end_line(self, *, force: bool) -> bool:
        line = self._line
        if not force and not line.chars:
            return False
        style = line.style or self._style
        self._events.append(
            TextLine(
                "".join(line.chars),
                bold=style.bold,
                double_height=style.double_height,
                double_width=style.double_width,
                align=style.align,
            )
        )
        self._line = _Line()
        return True

    def _control(self, pos: int, byte: int) -> int:
        if byte == LF:
            self._end_line(force=True)
        elif byte == HT:
            self._put(" " * (TAB_WIDTH - self._line.width % TAB_WIDTH))
        elif byte == FF:
            self._end_line(force=False)
        elif byte in _INTRODUCERS:
            return _INTRODUCERS[byte](self, pos)
        return 1

    def _need(self, pos: int, count: int) -> bool:
        return len(self._buf) - pos >= count

    def _esc(self, pos: int) -> int:
        if not self._need(pos, 2):
            return 0
        cmd = self._buf[pos + 1]
        special = _ESC_SPECIAL.get(cmd)
        if special is not None:
            return special(self, pos)
        size = 2 + _ESC_ARGS.get(cmd, 0)
        if not self._need(pos, size):
            return 0
        self._esc_effect(cmd, self._buf[pos + 2] if size > 2 else 0)
        return size

    def _esc_effect(self, cmd: int, arg: int) -> None:
        if cmd == ord("@"):
            self._line = _Line()  # Epson APG, ESC @: clears the print buffer
            self._reset()
            self._events.append(Init())
        elif cmd == ord("!"):
            self._style.bold = bool(arg & 0x08)
            self._style.double_height = bool(arg & 0x10)
            self._style.double_width = bool(arg & 0x20)
        elif cmd == ord("E"):
            self._style.bold = bool(arg & 0x01)
        elif cmd == ord("a"):
            self._style.align = arg % 48 if arg % 48 < 3 else 0
        elif cmd == ord("t"):
            self._table = decode_table(arg)
        elif cmd == ord("d"):
            self._feed(arg)
        elif cmd == ord("J"):
            self._feed(arg // DOTS_PER_LINE)
        elif cmd == ord("e"):
            self._end_line(force=False)  # Epson APG, ESC e: print, feed backwards
        elif cmd in (ord("i"), ord("m")):
            self._cut("esc_" + chr(cmd))

    def _feed(self, lines: int) -> None:
        printed = self._end_line(force=False)
        blank = lines - 1 if printed else lines
        if blank > 0:
            self._events.append(Feed(blank))

    def _cut(self, command: str) -> None:
        self._end_line(force=False)
        self._events.append(Cut(command))

    def _gs(self, pos: int) -> int:
        if not self._need(pos, 2):
            return 0
        cmd = self._buf[pos + 1]
        special = _GS_SPECIAL.get(cmd)
        if special is not None:
            return special(self, pos) if self._need(pos, 3) else 0
        size = 2 + _GS_ARGS.get(cmd, 0)
        if not self._need(pos, size):
            return 0
        if cmd == ord("!"):
            arg = self._buf[pos + 2]
            self._style.double_width = arg >> 4 & 0x07 > 0
            self._style.double_height = arg & 0x07 > 0
        return size

    def _fs(self, pos: int) -> int:
        if not self._need(pos, 2):
            return 0
        cmd = self._buf[pos + 1]
        if cmd == ord("("):
            return self._parenthesised(pos, "FS (")
        size = 2 + _FS_ARGS.get(cmd, 0)
        return size if self._need(pos, size) else 0

    def _dle(self, pos: int) -> int:
        if not self._need(pos, 3):
            return 0
        cmd, arg = self._buf[pos + 1], self._buf[pos + 2]
        if cmd == EOT:
            self._events.append(StatusRequest(arg))
            return 3
        if cmd == 0x14:  # Epson APG, DLE DC4 fn: real-time functions
            size = {1: 5, 2: 5, 3: 8, 7: 5, 8: 10}.get(arg, 3)
            return size if self._need(pos, size) else 0
        return 3 if cmd == 0x05 else 1

    def _parenthesised(self, pos: int, name: str) -> int:
        """Skip "x ( fn pL pH data": 2-D codes, graphics, settings."""
        if not self._need(pos, 5):
            return 0
        length = self._buf[pos + 3] | self._buf[pos + 4] << 8
        self._skip_payload(f"{name} {chr(self._buf[pos + 2])}", length)
        return 5

    def _skip_payload(self, command: str, length: int) -> None:
        self._skip = length
        self._events.append(Skipped(command, length))

    def _esc_bit_image(self, pos: int) -> int:
        """ESC * m nL nH: bit image, 3 bytes per column in 24-dot modes."""
        if not self._need(pos, 5):
            return 0
        mode, columns = self._buf[pos + 2], self._buf[pos + 3] | self._buf[pos + 4] << 8
        self._skip_payload("ESC *", columns * (3 if mode in (32, 33) else 1))
        return 5

    def _esc_glyphs(self, pos: int) -> int:
        """ESC & y c1 c2 [x d1..d(y*x)]...: user-defined characters."""
        if not self._need(pos, 5):
            return 0
        rows, first, last = self._buf[pos + 2], self._buf[pos + 3], self._buf[pos + 4]
        self._glyph_rows = rows
        self._glyphs_left = max(0, last - first + 1)
        self._events.append(Skipped("ESC &", self._glyphs_left))
        return 5

    def _terminated(self, pos: int, start: int, command: str) -> int:
        """Skip data that ends with NUL, at most MAX_TERMINATED bytes of it."""
        end = self._buf.find(NUL, pos + start, pos + start + MAX_TERMINATED + 1)
        if end < 0:
            if not self._need(pos, start + MAX_TERMINATED + 1):
                return 0
            end = pos + start + MAX_TERMINATED
        self._events.append(Skipped(command, end - pos - start))
        return end - pos + 1

    def _gs_raster(self, pos: int) -> int:
        """GS v 0 m xL xH yL yH (and GS Q 0 alike): raster image."""
        if not self._need(pos, 8):
            return 0
        b = self._buf
        width, height = b[pos + 4] | b[pos + 5] << 8, b[pos + 6] | b[pos + 7] << 8
        self._skip_payload(f"GS {chr(b[pos + 1])}", width * height)
        return 8

    def _gs_define_image(self, pos: int) -> int:
        """GS * x y d1..d(x*y*8): downloaded bit image."""
        if not self._need(pos, 4):
            return 0
        self._skip_payload("GS *", self._buf[pos + 2] * self._buf[pos + 3] * 8)
        return 4

    def _gs_long_graphics(self, pos: int) -> int:
        """GS 8 L p1 p2 p3 p4 data: graphics with a 4-byte length."""
        if not self._need(pos, 7):
            return 0
        length = int.from_bytes(self._buf[pos + 3 : pos + 7], "little")
        self._skip_payload("GS 8", length)
        return 7

    def _gs_barcode(self, pos: int) -> int:
        """GS k m d1..dk NUL (m 0..6) or GS k m n d1..dn (m 65..79)."""
        kind = self._buf[pos + 2]
        if kind <= 6:
            return self._terminated(pos, 3, "GS k")
        if not self._need(pos, 4):
            return 0
        self._skip_payload("GS k", self._buf[pos + 3])
        return 4

    def _gs_cut(self, pos: int) -> int:
        """GS V m [n]: function A has no n, functions B to D have one."""
        size = 3 if self._buf[pos + 2] in (0, 1, 48, 49) else 4
        if not self._need(pos, size):
            return 0
        self._cut("gs_v")
        return size


# Epson APG, ESC J n feeds n/180 inch; the default line is 30/180 inch.
DOTS_PER_LINE = 30

_Handler = Callable[[EscposDecoder, int], int]
_INTRODUCERS: dict[int, _Handler] = {
    ESC: EscposDecoder._esc,
    GS: EscposDecoder._gs,
    FS: EscposDecoder._fs,
    DLE: EscposDecoder._dle,
}
_ESC_SPECIAL: dict[int, _Handler] = {
    ord("*"): EscposDecoder._esc_bit_image,
    ord("&"): EscposDecoder._esc_glyphs,
    ord("("): lambda d, pos: d._parenthesised(pos, "ESC ("),
    ord("D"): lambda d, pos: d._terminated(pos, 2, "ESC D"),
}
_GS_SPECIAL: dict[int, _Handler] = {
    ord("("): lambda d, pos: d._parenthesised(pos, "GS ("),
    ord("v"): EscposDecoder._gs_raster,
    ord("Q"): EscposDecoder._gs_raster,
    ord("*"): EscposDecoder._gs_define_image,
    ord("8"): EscposDecoder._gs_long_graphics,
    ord("k"): EscposDecoder._gs_barcode,
    ord("V"): EscposDecoder._gs_cut,
}


def decode(data: bytes, default_codepage: int = 0) -> list[Event]:
    """Decode a whole stream at once."""
    decoder = EscposDecoder(default_codepage)
    return decoder.feed(data) + decoder.flush()


def text_lines(events: list[Event]) -> list[str]:
    """Return the printed text as lines, with fed blank lines included."""
    lines: list[str] = []
    for event in events:
        if isinstance(event, TextLine):
            lines.append(event.text)
        elif isinstance(event, Feed):
            lines.extend([""] * event.lines)
    return lines
