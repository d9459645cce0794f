"""The JSON bodies of sales and refunds: schemas and their checked requests.

``payment`` keeps the first contract, ``{"method": "cash", "tendered_minor": N}``.
A single voucher or gift card is ``{"method": "voucher", "amount_minor": N,
"ref": "..."}``; split tenders are ``{"method": "split", "tenders": [...]}``,
each tender shaped like a single payment, cash last by rule (it pays the rest,
rounded). A card tender in a split names its ``amount_minor``; the sale stays
pending until the terminal approves it (#3). A card alone is
``{"method": "card"}``: it pays the whole total.
"""

from __future__ import annotations

from typing import Any

from daemon.billing.discounts import Discount
from daemon.billing.tenders import Tender
from daemon.errors import InputError
from daemon.sales.service import MAX_LINES, MAX_QTY, SaleRequest
from daemon.web.schema import Arr, Bool, Int, Obj, Str

MAX_AMOUNT = 10**12
MAX_TENDERS = 4
MAX_DEPOSIT_RETURNS = 20
TENDER_METHODS = ("cash", "card", "voucher", "gift_card")

DISCOUNT = Obj({"amount_minor": Int(1, MAX_AMOUNT), "percent_bp": Int(1, 10_000),
                "label": Str(0, 40)},
               optional=frozenset({"amount_minor", "percent_bp", "label"}))
TENDER = Obj({"method": Str(choices=TENDER_METHODS),
              "tendered_minor": Int(0, MAX_AMOUNT),
              "amount_minor": Int(1, MAX_AMOUNT), "ref": Str(1, 64)},
             optional=frozenset({"tendered_minor", "amount_minor", "ref"}))
PAYMENT = Obj({"method": Str(choices=(*TENDER_METHODS, "split")),
               "tendered_minor": Int(0, MAX_AMOUNT),
               "amount_minor": Int(1, MAX_AMOUNT), "ref": Str(1, 64),
               "tenders": Arr(TENDER, 2, MAX_TENDERS)},
              optional=frozenset({"tendered_minor", "amount_minor", "ref",
                                  "tenders"}))
LINE = Obj({"sku": Str(1, 64), "qty": Int(1, MAX_QTY), "discount": DISCOUNT,
            "own_container": Bool()},
           optional=frozenset({"discount", "own_container"}))
DEPOSIT_RETURN = Obj({"packaging": Str(1, 40), "qty": Int(1, MAX_QTY)})
SALE_BODY = Obj({
    "client_ref": Str(8, 64),
    "lines": Arr(LINE, 1, MAX_LINES),
    "payment": PAYMENT,
    "discount": DISCOUNT,
    "deposit_returns": Arr(DEPOSIT_RETURN, 0, MAX_DEPOSIT_RETURNS),
    "contribution": Bool(),
}, optional=frozenset({"discount", "deposit_returns", "contribution"}))


def sale_request(body: dict[str, Any], tablet: str) -> SaleRequest:
    """Return the sale request a checked SALE_BODY asks for."""
    lines = body["lines"]
    return SaleRequest(
        client_ref=body["client_ref"],
        lines=tuple((ln["sku"], ln["qty"]) for ln in lines),
        tablet=tablet,
        tenders=tenders(body["payment"]),
        line_discounts=tuple((i, discount(ln["discount"], f"lines[{i}].discount"))
                             for i, ln in enumerate(lines) if "discount" in ln),
        own_container=frozenset(i for i, ln in enumerate(lines)
                                if ln.get("own_container")),
        sale_discount=discount(body["discount"], "discount")
        if "discount" in body else None,
        deposit_returns=tuple((d["packaging"], d["qty"])
                              for d in body.get("deposit_returns", ())),
        contribution=body.get("contribution", False),
    )


def discount(spec: dict[str, Any], path: str) -> Discount:
    """Return a discount from {amount_minor} or {percent_bp}, exactly one."""
    given = [k for k in ("amount_minor", "percent_bp") if k in spec]
    if len(given) != 1:
        raise InputError(f"{path} needs exactly one of amount_minor or percent_bp",
                         field=path)
    kind = "amount" if given[0] == "amount_minor" else "percent"
    return Discount(kind, spec[given[0]], spec.get("label", ""))


def tenders(payment: dict[str, Any]) -> tuple[Tender, ...]:
    """Return the tenders of a checked payment object."""
    if payment["method"] != "split":
        return (tender(payment, "payment"),)
    if "tenders" not in payment:
        raise InputError("a split payment lists its tenders", field="payment.tenders")
    extra = sorted({"tendered_minor", "amount_minor", "ref"} & payment.keys())
    if extra:
        raise InputError(f"give {extra[0]} on each tender of a split payment",
                         field=f"payment.{extra[0]}")
    out = tuple(tender(t, f"payment.tenders[{i}]")
                for i, t in enumerate(payment["tenders"]))
    if sum(t.method == "cash" for t in out) > 1:
        raise InputError("give cash as one tender", field="payment.tenders")
    if sum(t.method == "card" for t in out) > 1:
        raise InputError("one card per sale: the terminal takes one amount",
                         field="payment.tenders")
    return out


def tender(spec: dict[str, Any], path: str) -> Tender:
    """Return one tender: cash with tendered_minor, others with amount and ref."""
    method = spec["method"]
    if "tenders" in spec:
        raise InputError("only a split payment lists tenders", field=f"{path}.tenders")
    if method == "card":
        _only(spec, path, ("amount_minor",), ("tendered_minor", "ref"))
        return Tender("card", spec["amount_minor"])
    if method == "cash":
        _only(spec, path, ("tendered_minor",), ("amount_minor", "ref"))
        return Tender("cash", spec["tendered_minor"])
    _only(spec, path, ("amount_minor", "ref"), ("tendered_minor",))
    return Tender(method, spec["amount_minor"], spec["ref"])


def _only(spec: dict[str, Any], path: str, needed: tuple[str, ...],
          refused: tuple[str, ...]) -> None:
    """Require some fields of a tender and refuse others, naming the field."""
    for key in needed:
        if key not in spec:
            raise InputError(f"{path}.{key} is required for {spec['method']}",
                             field=f"{path}.{key}")
    for key in refused:
        if key in spec:
            raise InputError(f"{path}.{key} does not apply to {spec['method']}",
                             field=f"{path}.{key}")


def payment_field(err: InputError, payment: dict[str, Any]) -> InputError:
    """Name the body field of a settlement error (the engine says 'payment')."""
    if err.field == "tendered_minor":
        if payment.get("method") == "split":
            index = next(i for i, t in enumerate(payment["tenders"])
                         if t["method"] == "cash")
            return InputError(err.detail,
                              field=f"payment.tenders[{index}].tendered_minor")
        return InputError(err.detail, field="payment.tendered_minor")
    return err
