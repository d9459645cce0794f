"""The writer's product cache: a price change sells at once; rollbacks leave none."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from daemon.catalog.apply import apply_import
from daemon.catalog.importer import parse_catalog
from daemon.errors import InputError
from daemon.journal.store import Tx
from daemon.sales.service import SaleRequest, create_sale
from daemon.web.keys import STALLBOX


def _csv(tee: str, soap: str = "5,90") -> bytes:
    return (f'sku,name,price,tax_class\nTEE,Tee,"{tee}",reduced\n'
            f'SEIFE,Seife,"{soap}",standard\n').encode()


def _request(*lines: tuple[str, int]) -> SaleRequest:
    return SaleRequest(uuid.uuid4().hex, tuple(lines) or (("TEE", 1),), 100_000)


async def _unit(box: Any, sku: str = "TEE") -> int:
    outcome = await box.sell(_request((sku, 1)))
    return outcome.sale["lines"][0]["unit_minor"]


@pytest.fixture
async def box(client: Any) -> Any:
    box = client.app[STALLBOX]
    await box.import_catalog(_csv("3,20"), skip_invalid=False)
    return box


def _parsed(box: Any, data: bytes) -> Any:
    return parse_catalog(data, currency=box.config.stall.currency,
                         include_inactive=True)


async def test_price_change_sells_at_once(box: Any) -> None:
    assert await _unit(box) == 320
    await box.import_catalog(_csv("4,10"), skip_invalid=False)
    assert await _unit(box) == 410
    assert await _unit(box, "SEIFE") == 590
    await box.import_catalog(_csv("4,10", "6,00"), skip_invalid=False)
    assert await _unit(box, "SEIFE") == 600
    assert await _unit(box) == 410


async def test_name_and_tax_change_sell_at_once(box: Any) -> None:
    first = (await box.sell(_request(("TEE", 1)))).sale["lines"][0]
    await box.import_catalog(b"sku,name,price,tax_class\nTEE,Tee gross,\"3,20\","
                             b"standard\n", skip_invalid=False)
    after = (await box.sell(_request(("TEE", 1)))).sale["lines"][0]
    assert (first["name"], after["name"]) == ("Tee", "Tee gross")
    assert first["tax_code"] != after["tax_code"]


async def test_unknown_sku_then_imported_sells(box: Any) -> None:
    with pytest.raises(InputError, match="unknown or inactive"):
        await box.sell(_request(("NEU", 1)))
    await box.import_catalog(b"sku,name,price,tax_class\nNEU,Neu,\"1,00\",reduced\n",
                             skip_invalid=False)
    assert await _unit(box, "NEU") == 100


async def test_import_rolled_back_after_a_sale_saw_it(box: Any) -> None:
    """A savepoint rollback takes the import back; the sale after sees the old price."""
    assert await _unit(box) == 320
    parsed = _parsed(box, _csv("9,99"))
    config = box.config

    def import_sell_fail(tx: Tx) -> None:
        apply_import(tx, parsed, skip_invalid=False)
        sold = create_sale(tx, _request(("TEE", 1)), config.stall, config.billing)
        assert sold.sale["lines"][0]["unit_minor"] == 999  # cached from the import
        raise InputError("changed my mind")

    with pytest.raises(InputError, match="changed my mind"):
        await box.journal.transact(import_sell_fail)
    assert await _unit(box) == 320
    assert await _unit(box) == 320


async def test_rolled_back_seq_taken_by_another_event(box: Any) -> None:
    """The import's seq, reused by another event, does not pass for the import."""
    parsed = _parsed(box, _csv("9,99"))
    config = box.config

    def import_sell_fail(tx: Tx) -> None:
        apply_import(tx, parsed, skip_invalid=False)
        create_sale(tx, _request(("TEE", 1)), config.stall, config.billing)
        raise InputError("no")

    with pytest.raises(InputError):
        await box.journal.transact(import_sell_fail)
    await box.journal.transact(lambda tx: tx.append("test.filler", {"n": 1}))
    assert await _unit(box) == 320


async def test_import_failing_in_its_transaction_keeps_the_price(box: Any) -> None:
    assert await _unit(box) == 320
    parsed = _parsed(box, _csv("7,00"))

    def import_fail(tx: Tx) -> None:
        apply_import(tx, parsed, skip_invalid=False)
        raise InputError("late failure")

    with pytest.raises(InputError):
        await box.journal.transact(import_fail)
    assert await _unit(box) == 320
    await box.import_catalog(_csv("7,00"), skip_invalid=False)
    assert await _unit(box) == 700


async def test_many_unknown_skus_do_not_break_the_cache(box: Any) -> None:
    for n in range(5):
        with pytest.raises(InputError):
            await box.sell(_request(*((f"X{n}-{i}" * 8, 1) for i in range(200))))
    assert await _unit(box) == 320
