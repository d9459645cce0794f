"""Live-stream selling: integrations, signed webhooks, live prices and flash caps.

A streaming tool posts signed events (``web.py``); each is journaled once by its
id and moves the read models ``live_streams`` and ``live_offers`` (``events.py``).
The loop keeps a copy of the offers in memory (``board.py``) for the till, the
products API and the customer display; the sale flow asks ``pricing.py`` for
live prices inside the sale's own transaction, so a flash cap is counted by the
single journal writer and can never be oversold.
"""
