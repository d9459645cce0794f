-- The journal: events are the record, every other table is a read model
-- rebuilt from them and updated in the same transaction as their event.
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY,
    ts         TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    body       BLOB    NOT NULL,
    prev_hash  BLOB    NOT NULL,
    hash       BLOB    NOT NULL
);
CREATE TRIGGER IF NOT EXISTS events_append_only_update
BEFORE UPDATE ON events BEGIN
    SELECT RAISE(ABORT, 'journal events are append-only');
END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete
BEFORE DELETE ON events BEGIN
    SELECT RAISE(ABORT, 'journal events are append-only');
END;

CREATE TABLE IF NOT EXISTS products (
    sku         TEXT PRIMARY KEY,
    name        TEXT    NOT NULL,
    variant     TEXT    NOT NULL DEFAULT '',
    parent_sku  TEXT    NOT NULL DEFAULT '',
    category    TEXT    NOT NULL DEFAULT '',
    price_minor INTEGER NOT NULL,
    tax_class   TEXT    NOT NULL,
    weight_g    INTEGER,
    gift_card   INTEGER NOT NULL DEFAULT 0,
    barcode     TEXT    NOT NULL DEFAULT '',
    active      INTEGER NOT NULL DEFAULT 1,
    search      TEXT    NOT NULL DEFAULT '',
    seq         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS products_category ON products (category, name);

CREATE TABLE IF NOT EXISTS sales (
    id           TEXT PRIMARY KEY,
    seq          INTEGER NOT NULL UNIQUE,
    client_ref   TEXT    NOT NULL UNIQUE,
    created_at   TEXT    NOT NULL,
    tablet       TEXT    NOT NULL DEFAULT '',
    total_minor  INTEGER NOT NULL,
    currency     TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    receipt      BLOB    NOT NULL
);

CREATE TABLE IF NOT EXISTS sale_lines (
    sale_id      TEXT    NOT NULL REFERENCES sales (id),
    line_no      INTEGER NOT NULL,
    sku          TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    qty          INTEGER NOT NULL,
    unit_minor   INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    tax_code     TEXT    NOT NULL,
    PRIMARY KEY (sale_id, line_no)
);

CREATE TABLE IF NOT EXISTS payments (
    id             INTEGER PRIMARY KEY,
    sale_id        TEXT    NOT NULL REFERENCES sales (id),
    method         TEXT    NOT NULL,
    amount_minor   INTEGER NOT NULL,
    tendered_minor INTEGER NOT NULL,
    change_minor   INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    seq            INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_sale ON payments (sale_id);

CREATE TABLE IF NOT EXISTS print_jobs (
    id          INTEGER PRIMARY KEY,
    sale_id     TEXT    NOT NULL REFERENCES sales (id),
    reprint     INTEGER NOT NULL DEFAULT 0,
    automatic   INTEGER NOT NULL DEFAULT 0,  -- queued by the daemon after a cut-off
    status      TEXT    NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    seq         INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS print_jobs_status ON print_jobs (status, id);

-- Card payment attempts (issue 3, daemon/payments): journaled before the
-- terminal is asked; pending -> approved | declined | aborted | unknown, and an
-- unknown one -> approved | declined by payment.resolved. One in flight per
-- terminal, enforced here as well as in the service.
CREATE TABLE IF NOT EXISTS payment_intents (
    id           TEXT PRIMARY KEY,
    sale_id      TEXT    NOT NULL REFERENCES sales (id),
    attempt      INTEGER NOT NULL,
    terminal     TEXT    NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency     TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    updated_seq  INTEGER NOT NULL,
    result       BLOB    NOT NULL DEFAULT '{}',
    print_lines  BLOB    NOT NULL DEFAULT '[]',
    resolved_by  TEXT    NOT NULL DEFAULT '',
    eod_seq      INTEGER,
    UNIQUE (sale_id, attempt)
);
CREATE UNIQUE INDEX IF NOT EXISTS payment_intents_in_flight
    ON payment_intents (terminal) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS payment_intents_status ON payment_intents (status);

CREATE TABLE IF NOT EXISTS tablets (
    token_hash TEXT PRIMARY KEY,
    name       TEXT    NOT NULL,
    paired_at  TEXT    NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0,
    seq        INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS pairing_codes (
    code_hash  TEXT PRIMARY KEY,
    expires_at TEXT    NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    seq        INTEGER NOT NULL
);

-- Seals: the chain head at seq, signed by the epoch key live when it committed
-- (see store.py for when a batch is sealed). Append-only like events.
CREATE TABLE IF NOT EXISTS seals (
    seq        INTEGER PRIMARY KEY,
    epoch      INTEGER NOT NULL,
    hash       BLOB    NOT NULL,
    signature  BLOB    NOT NULL
);
CREATE TRIGGER IF NOT EXISTS seals_append_only_update
BEFORE UPDATE ON seals BEGIN
    SELECT RAISE(ABORT, 'journal seals are append-only');
END;
CREATE TRIGGER IF NOT EXISTS seals_append_only_delete
BEFORE DELETE ON seals BEGIN
    SELECT RAISE(ABORT, 'journal seals are append-only');
END;

-- Read model of key.epoch events: each epoch's public key and its certificate.
CREATE TABLE IF NOT EXISTS epochs (
    epoch       INTEGER PRIMARY KEY,
    public_key  BLOB    NOT NULL,
    seq         INTEGER NOT NULL UNIQUE,
    cert        BLOB    NOT NULL
);

-- Read model of shift.closed and day.closed events.
CREATE TABLE IF NOT EXISTS closures (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    client_ref  TEXT    NOT NULL UNIQUE,
    from_seq    INTEGER NOT NULL,
    body        BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS closures_kind ON closures (kind, seq);

-- Billing read models (issue 4). Packaging type and carbon factor reference of
-- each product, kept beside products so journals made before them still open.
CREATE TABLE IF NOT EXISTS product_billing (
    sku           TEXT PRIMARY KEY,
    packaging     TEXT    NOT NULL DEFAULT '',
    carbon_factor TEXT    NOT NULL DEFAULT '',
    seq           INTEGER NOT NULL
);

-- One row per refund (event sale.refunded); refund_lines say which units.
CREATE TABLE IF NOT EXISTS refunds (
    id           TEXT PRIMARY KEY,
    sale_id      TEXT    NOT NULL REFERENCES sales (id),
    seq          INTEGER NOT NULL UNIQUE,
    client_ref   TEXT    NOT NULL UNIQUE,
    created_at   TEXT    NOT NULL,
    tablet       TEXT    NOT NULL DEFAULT '',
    total_minor  INTEGER NOT NULL,
    record       BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_sale ON refunds (sale_id);

CREATE TABLE IF NOT EXISTS refund_lines (
    refund_id    TEXT    NOT NULL REFERENCES refunds (id),
    sale_id      TEXT    NOT NULL,
    line_index   INTEGER NOT NULL,
    qty          INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    PRIMARY KEY (refund_id, line_index)
);
CREATE INDEX IF NOT EXISTS refund_lines_sale ON refund_lines (sale_id, line_index);

-- Closed shifts (event shift.closed); the Z report is the stored record.
CREATE TABLE IF NOT EXISTS shifts (
    seq          INTEGER PRIMARY KEY,
    client_ref   TEXT    NOT NULL UNIQUE,
    closed_at    TEXT    NOT NULL,
    first_seq    INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    report       BLOB    NOT NULL
);

-- Live selling (issue 8). Integrations by name only: their secrets live in a
-- 0600 file in the state dir, never in the shipped journal. Webhook events by
-- id (idempotency); streams and the live offer (pin or flash) per sku, each
-- with the signed time t of the event that last moved it (out-of-order guard).
CREATE TABLE IF NOT EXISTS live_integrations (
    name  TEXT PRIMARY KEY,
    seq   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS live_events (
    id          TEXT PRIMARY KEY,
    integration TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    seq         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS live_streams (
    id        TEXT PRIMARY KEY,
    platform  TEXT    NOT NULL DEFAULT '',
    title     TEXT    NOT NULL DEFAULT '',
    active    INTEGER NOT NULL,
    started_t REAL    NOT NULL,
    t         REAL    NOT NULL,
    seq       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS live_offers (
    sku         TEXT PRIMARY KEY,
    kind        TEXT    NOT NULL,  -- 'pin' or 'flash'
    event_id    TEXT    NOT NULL,
    stream_id   TEXT    NOT NULL DEFAULT '',
    price_minor INTEGER,           -- NULL: pinned without a live price
    until_s     REAL    NOT NULL,  -- unix seconds; valid while now < until_s
    cap         INTEGER,           -- flash quantity cap, NULL for none
    sold        INTEGER NOT NULL DEFAULT 0,
    t           REAL    NOT NULL,
    seq         INTEGER NOT NULL
);
-- The stream a sale is attributed to, by the sale's client_ref (its live part
-- is in the sale.completed event).
CREATE TABLE IF NOT EXISTS live_sales (
    client_ref TEXT PRIMARY KEY,
    stream_id  TEXT NOT NULL,
    body       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS live_sales_stream ON live_sales (stream_id);

-- Customer display (issue 8): creatives as last saved, and impressions and
-- conversions aggregated per slot, cohort and hour (no customer data exists).
CREATE TABLE IF NOT EXISTS display_creatives (
    id     TEXT PRIMARY KEY,
    body   BLOB    NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    seq    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS display_stats (
    slot        TEXT    NOT NULL,
    hour        TEXT    NOT NULL,
    cohort      TEXT    NOT NULL,
    impressions INTEGER NOT NULL DEFAULT 0,
    shown_s     INTEGER NOT NULL DEFAULT 0,
    conversions INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (slot, hour, cohort)
);

-- Card refunds and reversals (issues 3 and 4, daemon/payments/card_refund.py):
-- journaled before the terminal is asked, like payment intents; the refund's
-- units stay reserved in refund_lines while it is pending or unknown.
-- pending -> approved | declined | aborted | unknown; unknown -> approved |
-- declined by refund.resolved.
CREATE TABLE IF NOT EXISTS refund_intents (
    id           TEXT PRIMARY KEY,
    refund_id    TEXT    NOT NULL REFERENCES refunds (id),
    sale_id      TEXT    NOT NULL,
    terminal     TEXT    NOT NULL,
    kind         TEXT    NOT NULL,  -- 'refund' (06 31) or 'reversal' (06 30)
    amount_minor INTEGER NOT NULL,
    currency     TEXT    NOT NULL,
    payment_id   TEXT    NOT NULL,  -- the payment intent paid back
    status       TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    updated_seq  INTEGER NOT NULL,
    result       BLOB    NOT NULL DEFAULT '{}',
    print_lines  BLOB    NOT NULL DEFAULT '[]',
    resolved_by  TEXT    NOT NULL DEFAULT '',
    eod_seq      INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS refund_intents_in_flight
    ON refund_intents (terminal) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS refund_intents_refund ON refund_intents (refund_id);

-- A print job that prints a refund slip instead of its sale's receipt.
CREATE TABLE IF NOT EXISTS print_job_refunds (
    job_id    INTEGER PRIMARY KEY REFERENCES print_jobs (id),
    refund_id TEXT    NOT NULL REFERENCES refunds (id)
);

-- E-receipts (issue 6, daemon/ereceipt): one per sale, the customer's address
-- only as a token sealed under the day's data key (never in clear here or in
-- the events); queued -> sent | failed. Shredded days by their
-- datakey.shredded event: their tokens can no longer be opened.
CREATE TABLE IF NOT EXISTS email_receipts (
    sale_id     TEXT PRIMARY KEY REFERENCES sales (id),
    day         TEXT    NOT NULL,
    token       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    seq         INTEGER NOT NULL,
    updated_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS email_receipts_status ON email_receipts (status, seq);
CREATE TABLE IF NOT EXISTS shredded_days (
    day  TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);

-- Gift cards (issue 4, daemon/sales/giftcards.py): one row per card issued by
-- a sale.completed event, found by the SHA-256 of its code (the code itself is
-- never stored here nor journaled); balance moved by the sales that spend it
-- and the refunds that put it back (gift_card_returns) or void it.
CREATE TABLE IF NOT EXISTS gift_cards (
    code_hash     TEXT PRIMARY KEY,
    last4         TEXT    NOT NULL,
    currency      TEXT    NOT NULL,
    issued_minor  INTEGER NOT NULL,
    balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0),
    status        TEXT    NOT NULL,
    sale_id       TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    updated_seq   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS gift_cards_seq ON gift_cards (seq);
CREATE TABLE IF NOT EXISTS gift_card_returns (
    code_hash     TEXT    NOT NULL,
    sale_id       TEXT    NOT NULL,
    refund_id     TEXT    NOT NULL,
    amount_minor  INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    PRIMARY KEY (code_hash, refund_id)
);
CREATE INDEX IF NOT EXISTS gift_card_returns_sale ON gift_card_returns (sale_id);
-- The plain codes of the cards a sale issued, as its receipt prints them:
-- local only (never journaled nor synced), so no replay rebuilds it.
CREATE TABLE IF NOT EXISTS gift_card_codes (
    sale_id TEXT PRIMARY KEY,
    notes   TEXT NOT NULL
);
