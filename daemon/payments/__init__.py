"""Card payments: intents in the journal, the terminal service, end-of-day."""
