"""Stallbox billing: pure functions over exact money, no I/O but dataset files.

A sale flows through: ``pricing.price_sale`` (gross lines, tax per rate) ->
``discounts.apply_discounts`` -> ``tenders.settle`` (split tenders, cash
rounding from ``cash``) -> ``refunds.paid_sale`` for later ``refunds.refund``.
``packaging`` and ``contribution`` add lines before pricing; ``carbon`` estimates
the footprint from ``factors`` (``default_factors`` ships a cited table).
"""
