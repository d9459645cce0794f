"""Pricing benchmark: a 50-line cart through the whole sale flow, carbon included.

The floor is building the same cart as plain Python tuples (sku, qty, unit,
tax class, factor) in the same run: the cost of merely touching the data.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.billing.default_factors import default_categories
from daemon.billing.tenders import Tender
from daemon.config import parse_config
from daemon.sales.checkout import Order, Product, price_order

CART_LINES = 50


def _products() -> dict[str, Product]:
    """Fifty products: mass-based food, spend-based goods, some packaging."""
    categories = sorted(default_categories())
    out = {}
    for i in range(CART_LINES):
        category = categories[i % len(categories)]
        out[f"P{i:03d}"] = Product(
            f"P{i:03d}", f"Produkt {i}", 150 + 37 * i,
            "reduced" if i % 3 else "standard", "", 100 + 10 * i, False,
            "cup" if i % 5 == 0 else "", category)
    return out


def _config() -> Any:
    return parse_config({
        "stall": {"name": "Bench", "currency": "EUR"},
        "cash": {"rounding_step": "0.05"},
        "packaging": {"cup": {"fee": "0.20", "deposit": "1.00"}},
    }, base_dir=Path("."))


def _timed_us(fn: Callable[[], Any], runs: int) -> list[float]:
    """Return each call's wall time in microseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def run(quick: bool, figure: Any) -> list[Any]:
    """Return p50 and p99 of pricing the cart, each next to the tuple floor."""
    config = _config()
    products = _products()
    lines = tuple((sku, 1 + i % 3) for i, sku in enumerate(products))
    order = Order(lines, (Tender("cash", 10**9),), ((0, _ten_percent()),),
                  sale_discount=_ten_percent(), contribution=False)

    def priced() -> object:
        return price_order(order, products, config.stall, config.billing)

    def tuples() -> object:
        return [(sku, qty, products[sku].price_minor, products[sku].tax_class,
                 products[sku].carbon_factor) for sku, qty in lines]

    runs = 300 if quick else 3000
    _timed_us(priced, 50)  # warm caches
    price_us = sorted(_timed_us(priced, runs))
    floor_us = sorted(_timed_us(tuples, runs))
    floor = "the same cart as plain tuples"
    return [
        figure(f"price a {CART_LINES}-line cart with carbon, p50",
               statistics.median(price_us), "µs", floor,
               statistics.median(floor_us), ""),
        figure(f"price a {CART_LINES}-line cart with carbon, p99",
               _p99(price_us), "µs", floor, _p99(floor_us), "≤ 1000 µs"),
    ]


def _p99(sorted_values: list[float]) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * 0.99))]


def _ten_percent() -> Any:
    from daemon.billing.discounts import Discount

    return Discount("percent", 1000, "bench")


if __name__ == "__main__":
    from dataclasses import dataclass

    @dataclass
    class _Row:
        name: str
        value: float
        unit: str
        floor_name: str
        floor: float
        target: str

    for row in run(False, _Row):
        print(f"{row.name}: {row.value:.0f} {row.unit} (floor {row.floor:.1f} "
              f"{row.unit}, {row.floor_name}) {row.target}")
