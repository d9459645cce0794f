"""The reference billing-pipeline receiver: verify batches, store, build invoices."""
