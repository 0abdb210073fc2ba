-- The append-only event log and the status projection folded from it.
-- Applied once, inside a transaction; the schema version is PRAGMA user_version.

CREATE TABLE events (
    -- Global order of observation; never reused (AUTOINCREMENT).
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    state           TEXT,
    treaty          TEXT,
    -- RFC 3339 UTC: when it happened in the world, and when we wrote it down.
    occurred_at     TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    payload_version INTEGER NOT NULL,
    -- Identity of the observation: appending it again is a no-op.
    dedupe_key      TEXT    NOT NULL UNIQUE
);

CREATE INDEX events_by_key ON events (state, treaty, seq);
CREATE INDEX events_by_kind ON events (kind, seq);

-- History is never edited: corrections are new events (asserted, retracted).
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused');
END;

-- Status per (state, treaty): a cache of the fold over `events`, kept in the
-- same transaction as each append and rebuilt by `treatywatch replay`.
CREATE TABLE status (
    state      TEXT    NOT NULL,
    treaty     TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    since      TEXT    NOT NULL,
    since_seq  INTEGER NOT NULL REFERENCES events (seq),
    sources    TEXT    NOT NULL CHECK (json_valid(sources)),
    evidence   TEXT             CHECK (evidence IS NULL OR json_valid(evidence)),
    manual     INTEGER NOT NULL,
    backfill   INTEGER NOT NULL,
    PRIMARY KEY (state, treaty)
) WITHOUT ROWID;
