"""The customer display: the linked till's cart, a thank-you, and ad slots.

``select.py`` picks a slot as a pure function of (inventory, cohort, time
bucket); ``render.py`` turns it into HTML that ``cache.py`` keeps per
(cohort, slot, inventory version, bucket); ``hub.py`` pushes cart, thank-you
and slot changes to displays over server-sent events; ``measure.py`` counts
impressions and conversions and journals them as aggregates; ``payment.py``
shows a card payment (prompts, outcome, thank-you); ``images.py``
checks and re-encodes uploaded creatives; ``service.py`` ties them to the
running daemon and ``web.py`` serves the pages.
"""
