"""E-receipts: a receipt by mail, with consent, the address sealed per day (#6)."""
