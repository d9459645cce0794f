"""ZVT APDU, field and message tests against real captures and test vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.terminal import zvt_apdu as a
from device.terminal.zvt_fields import (
    ZvtParseError,
    encode_bmps,
    parse_bmps,
    parse_tlv,
)
from device.terminal.zvt_frame import FrameDecoder, encode_frame
from tests.test_zvt_data import (
    Vector,
    bezahl_online,
    bezahl_online_names,
    ecrterm_vectors,
)

GOLDEN = Path(__file__).parent / "golden" / "zvt" / "ecr_commands.txt"
LATIN1 = "latin-1"  # the bezahl-online test terminal sends Latin-1 text

# Vectors that are malformed as stored; each must be rejected with this reason.
ECRTERM_REJECTS = {
    "test_apdu.py:29": "BMP 22: bad length prefix",
    "test_apdu.py:184": "unknown BMP",
    "test_parsing.py:114": "length field says 33",
    "test_parsing.py:138": "length field says 32",
    "test_parsing_open_reservation_responses.py:25": "length field says 14",
    "test_parsing_open_reservation_responses.py:34": "length field says 17",
}
_FROM_TERMINAL = {
    a.MSG_STATUS_INFO,
    a.MSG_INTERMEDIATE,
    a.MSG_COMPLETION,
    a.MSG_ABORT,
    a.MSG_PRINT_LINE,
    a.MSG_TEXT_BLOCK,
}


def _decode_any(raw: bytes) -> object:
    if raw.startswith(b"\x10\x02"):
        (event,) = FrameDecoder().feed(raw)
        raw = event.apdu  # type: ignore[union-attr]
    if raw[:2] in _FROM_TERMINAL or raw[0] in (a.ACK_CLASS, a.REJECT_CLASS):
        return a.decode_message(raw)
    return a.decode_ecr_command(raw)


@pytest.mark.parametrize("vector", ecrterm_vectors(), ids=lambda v: v.source)
def test_every_ecrterm_vector_parses_or_is_rejected(vector: Vector) -> None:
    reason = ECRTERM_REJECTS.get(vector.source)
    if reason is None:
        assert not vector.negative
        _decode_any(vector.raw)
    else:
        with pytest.raises(ZvtParseError, match=reason):
            _decode_any(vector.raw)


def test_status_info_bmps_round_trip_byte_exact() -> None:
    raw = bytes.fromhex(
        "040f372700040000000040004909780c0938480d042522f1f15966666666d200212201"
        "001700018701750b613995194029600999140e05128a02"
    )
    data = a.decode_apdu(raw).data

    assert encode_bmps(parse_bmps(data)) == data
    info = a.decode_message(raw)
    assert isinstance(info, a.StatusInfo)
    assert (info.amount_minor, info.trace, info.receipt_no) == (4000, 613995, 175)
    assert info.masked_pan == "******6666"  # track data after D dropped


def test_visa_contactless_status_info() -> None:
    vector = next(v for v in ecrterm_vectors() if v.source == "test_parsing.py:48")
    info = a.decode_message(vector.raw)

    assert isinstance(info, a.StatusInfo)
    assert info.result_code == a.RESULT_SUCCESS
    assert (info.amount_minor, info.currency_code) == (1000, 978)
    assert (info.terminal_id, info.trace, info.receipt_no) == ("42003036", 733, 2)
    assert info.masked_pan == "474843******7743"
    assert (info.card_name, info.auth_code) == ("VISA", "889150")


def test_abort_with_text_from_external_command() -> None:
    vector = next(
        v for v in ecrterm_vectors() if v.source == "test_parsing_abort.py:10"
    )
    msg = a.decode_message(vector.raw)

    assert msg == a.AbortMessage(0x6C, "Abbruch durch externes Kommando!")


def test_text_encodings() -> None:
    cp437 = bytes.fromhex("06d10d005465737420842094208120e1")
    latin1 = bytes.fromhex("06d10d005465737420e420f620fc20df")

    assert a.decode_message(cp437) == a.PrintLine(0, "Test ä ö ü ß")
    assert a.decode_message(latin1, LATIN1) == a.PrintLine(0, "Test ä ö ü ß")


def test_completion_after_status_enquiry_carries_version() -> None:
    raw = bytes.fromhex("060f0bf0f0f7322e31342e313500")
    assert a.decode_message(raw) == a.Completion(0, "2.14.15")


# --- bezahl-online captures: every file, real values from ANNOTATIONS.txt ---

NO_LENGTH_BYTE = ("1617177992186PT.hex", "1617181236803PT.hex")


@pytest.mark.parametrize("name", NO_LENGTH_BYTE)
def test_end_of_day_frames_without_length_byte_are_rejected(name: str) -> None:
    with pytest.raises(ZvtParseError, match="length field says 39 data bytes, 72"):
        a.decode_message(bezahl_online(name), LATIN1)


def test_malformed_totals_rejected_even_when_length_byte_is_skipped() -> None:
    body = bezahl_online("1617177992186PT.hex")[2:]
    with pytest.raises(ZvtParseError, match="BMP 60: bad length prefix 78f276"):
        a.decode_status_info(body)


def test_wellformed_totals_decode_when_length_byte_is_skipped() -> None:
    info = a.decode_status_info(bezahl_online("1617181236803PT.hex")[2:])

    assert (info.result_code, info.amount_minor) == (0, 2600)
    assert info.totals is not None
    assert (info.totals.receipt_from, info.totals.receipt_to) == (68, 71)
    assert info.totals.brands[0] == a.BrandTotal("girocard", 4, 2600)
    assert all(b.count == 0 for b in info.totals.brands[1:])


def test_all_capture_files_are_covered() -> None:
    covered = set(NO_LENGTH_BYTE) | set(CAPTURES)
    assert covered == set(bezahl_online_names())


CAPTURES: dict[str, object] = {
    "1618046758827PT.hex": a.StatusInfo(
        result_code=0x05,
        card_type=0x0D,
        terminal_id="29001006",
        text="Karte abgelehnt",
    ),
    "1618593839564PT.hex": a.StatusInfo(
        result_code=0,
        amount_minor=1880,
        currency_code=978,
        trace=153,
        receipt_no=153,
        turnover_no=153,
        masked_pan="***************4281",
        card_type=0x2E,
        card_name="MAESTRO",
        time_hhmmss="192336",
        date_mmdd="0416",
        terminal_id="29001006",
        auth_code="958520",
        text="GEN.NR.:958520",
    ),
    "data081649050.hex": a.StatusInfo(
        result_code=0,
        amount_minor=1,
        currency_code=978,
        trace=22,
        receipt_no=22,
        turnover_no=22,
        masked_pan="************5726",
        card_type=0x2E,
        card_name="Debit Mastercard",
        time_hhmmss="164923",
        date_mmdd="0308",
        terminal_id="29001006",
        auth_code="291675",
        text="GEN.NR.:291675",
    ),
    "1620217578711PT.hex": a.StatusInfo(result_code=0x6C, terminal_id="29001006"),
    "data081537039.hex": a.StatusInfo(result_code=0x6C, terminal_id="29001006"),
    "1619070661833PT.hex": a.Completion(terminal_status=0xDC),
    "1620218414428PT.hex": a.Completion(terminal_id="29001006", currency_code=978),
    "1620217579741PT.hex": a.AbortMessage(0x6C),
    "data091355012.hex": a.AbortMessage(0x6C),
    "data050730027.hex": a.IntermediateStatus(
        0x0A, 1, "Karte vorhalten\neinstecken/durchziehen"
    ),
    "data081537024.hex": a.IntermediateStatus(
        0x0A, 1, "Karte vorhalten\neinstecken/durchziehen"
    ),
    "data081621025.hex": a.IntermediateStatus(0x0E),
    "1617777384987PT.hex": "text block",
    "data051327012.hex": "text block",
}


@pytest.mark.parametrize("name", [n for n, v in CAPTURES.items() if v != "text block"])
def test_capture_decodes_to_annotated_values(name: str) -> None:
    assert a.decode_message(bezahl_online(name), LATIN1) == CAPTURES[name]


def test_end_of_day_report_text_block() -> None:
    block = a.decode_message(bezahl_online("1617777384987PT.hex"), LATIN1)

    assert isinstance(block, a.TextBlock)
    assert block.receipt_type == a.RECEIPT_ADMIN
    assert block.lines[0] == "** KASSENSCHNITT **"
    assert "Gesamt      0       0,00" in block.lines
    assert block.lines[-1] == " "


def test_merchant_receipt_in_latin1() -> None:
    block = a.decode_message(bezahl_online("data051327012.hex"), LATIN1)

    assert isinstance(block, a.TextBlock)
    assert block.receipt_type == a.RECEIPT_MERCHANT
    assert block.lines[0] == "** HÄNDLERBELEG **"
    assert "Nr:  **** **** **** 5726" in block.lines
    assert "BETRAG:  EUR        0,01" in block.lines


def test_tlv_in_text_block_has_two_top_level_objects() -> None:
    apdu = a.decode_apdu(bezahl_online("1617777384987PT.hex"))
    (bmp,) = parse_bmps(apdu.data)
    assert [t.tag for t in parse_tlv(bmp.value)] == [0x1F07, 0x25]


# --- what Stallbox sends: exact bytes ---


def _golden() -> list[tuple[str, str, str]]:
    rows = GOLDEN.read_text().splitlines()
    return [tuple(r.split()) for r in rows if r and not r.startswith("#")]  # type: ignore[misc]


def _built(name: str) -> bytes:
    builders = {
        "registration_pw123456_cfgBE_eur": lambda: a.registration("123456", 0xBE, 978),
        "authorisation_190_no_currency": lambda: a.authorisation(190),
        "authorisation_1010_eur": lambda: a.authorisation(1010, 978),
        "status_enquiry_pw123456": lambda: a.status_enquiry("123456"),
        "end_of_day_pw123456": lambda: a.end_of_day("123456"),
        "reversal_pw123456_receipt42": lambda: a.reversal("123456", 42),
        "refund_pw123456_500_eur": lambda: a.refund("123456", 500, 978),
        "repeat_receipt_pw123456": lambda: a.repeat_receipt("123456"),
        "abort": a.abort_command,
        "positive_ack": lambda: a.POSITIVE_ACK,
    }
    return builders[name]()


@pytest.mark.parametrize("row", _golden(), ids=lambda r: r[0])
def test_ecr_commands_match_golden(row: tuple[str, str, str]) -> None:
    name, apdu_hex, frame_hex = row
    apdu = _built(name)

    assert apdu.hex() == apdu_hex
    assert encode_frame(apdu).hex() == frame_hex


def test_commands_agree_with_published_vectors() -> None:
    assert encode_frame(a.registration("123456", 0xBA, 978)) == bytes.fromhex(
        "1002060006123456ba0978100324c3"
    )
    assert a.authorisation(11000, 978) == bytes.fromhex("06010a04000000011000490978")
    assert a.status_enquiry("123456") == bytes.fromhex("050103123456")


def test_long_form_length() -> None:
    raw = a.encode_apdu(a.MSG_TEXT_BLOCK, bytes(300))

    assert raw[:5] == bytes.fromhex("06 d3 ff 2c 01")
    assert a.decode_apdu(raw).data == bytes(300)


def test_sim_side_builders_round_trip() -> None:
    info = a.StatusInfo(
        result_code=0,
        amount_minor=1234,
        currency_code=978,
        trace=17,
        receipt_no=9,
        masked_pan="******1234",
        card_type=0x0A,
        card_name="Visa",
        time_hhmmss="120000",
        date_mmdd="0102",
        terminal_id="12345678",
        auth_code="A1B2C3",
    )
    text = "PIN eingeben"

    assert a.decode_message(a.encode_status_info(info)) == info
    assert a.decode_message(a.encode_intermediate(0x01, text)).prompt == text
    assert a.decode_message(a.encode_abort(0x6C)) == a.AbortMessage(0x6C)
    assert a.decode_message(a.encode_completion()) == a.Completion()
    block = a.encode_text_block(["a", "b"], a.RECEIPT_CUSTOMER)
    assert a.decode_message(block) == a.TextBlock(a.RECEIPT_CUSTOMER, ("a", "b"))


@pytest.mark.parametrize(
    ("received", "stored"),
    [
        ("4548123412341234", "454812******1234"),
        ("474843******7743", "474843******7743"),
        ("5966666666D2002122", "******6666"),
        ("************5726", "************5726"),
    ],
)
def test_mask_pan_keeps_at_most_first_six_last_four(received: str, stored: str) -> None:
    assert a.mask_pan(received) == stored


def test_redacted_hex_hides_pan_and_everything_after() -> None:
    raw = a.encode_status_info(
        a.StatusInfo(result_code=0, amount_minor=100, masked_pan="4548123412341234")
    )
    dump = a.redacted_hex(raw)

    assert dump.endswith("22 <10 bytes masked>")
    assert "45 48" not in dump


def test_redacted_hex_masks_unparseable_rest() -> None:
    dump = a.redacted_hex(bytes.fromhex("040f05270099f012"))
    assert dump == "04 0f 05 27 00 <3 bytes masked>"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_garbage_never_crashes_the_decoder(raw: bytes) -> None:
    for prefix in (b"\x04\x0f", b"\x04\xff", b"\x06\x0f", b"\x06\x1e", b"\x06\xd3"):
        data = prefix + bytes((len(raw),)) + raw
        try:
            a.decode_message(data)
        except ZvtParseError:
            pass
        a.redacted_hex(data)
