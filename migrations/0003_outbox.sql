-- The notifier's outbox: which status changes each recipient still has to
-- hear about, the digests built from them, and the notifier's place in the log.
-- What was sent is also recorded in the log itself (`digest_sent` events);
-- these tables are the working state that gets it there exactly once.

-- Every status change with seq <= last_seq has been routed into `outbox`.
-- An existing database starts at its end: changes recorded before digests
-- existed are history, not news, and are never mailed.
CREATE TABLE notify_cursor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT INTO notify_cursor (id, last_seq) SELECT 1, coalesce(max(seq), 0) FROM events;

-- One digest for one recipient, frozen before its first delivery attempt:
-- a retry sends exactly these bytes, so a resend after a crash is the same
-- message with the same Message-ID.
CREATE TABLE digest_batch (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient       TEXT    NOT NULL,
    first_seq       INTEGER NOT NULL REFERENCES events (seq),
    last_seq        INTEGER NOT NULL REFERENCES events (seq),
    message_id      TEXT    NOT NULL UNIQUE,
    envelope_from   TEXT    NOT NULL,
    -- The RFC 5322 message as composed.
    message         BLOB    NOT NULL,
    subject         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- RFC 3339 UTC; the batch is not tried again before then (backoff).
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT,
    -- The `digest_sent` event recording delivery; NULL while pending.
    sent_seq        INTEGER REFERENCES events (seq)
);

CREATE INDEX digest_batch_pending ON digest_batch (recipient, id) WHERE sent_seq IS NULL;

-- One row per (status change, recipient): one recipient's failure never
-- resends anything to another.
CREATE TABLE outbox (
    change_seq INTEGER NOT NULL REFERENCES events (seq),
    recipient  TEXT    NOT NULL,
    -- A stage the recipient marked urgent: sent without waiting for debounce.
    urgent     INTEGER NOT NULL,
    -- When the change was recorded; the debounce window runs from here.
    queued_at  TEXT    NOT NULL,
    -- The digest that carries it; NULL while it waits for one.
    batch_id   INTEGER REFERENCES digest_batch (id),
    PRIMARY KEY (change_seq, recipient)
) WITHOUT ROWID;

CREATE INDEX outbox_unbatched ON outbox (recipient, change_seq) WHERE batch_id IS NULL;
