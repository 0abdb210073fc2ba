-- The event log rebuilt leaner (issue 17), every row kept as it was: the
-- same seq, kind, key, times, payload bytes and dedupe key. Three things
-- change, each because it cost every append and bought nothing:
--
-- * No `json_valid` CHECK on the payload: every payload is written by
--   serde_json from the typed `domain::EventBody` (`store::log::insert`),
--   so it is valid JSON by construction, and the check parsed each one
--   again inside the insert.
-- * `seq` is a plain INTEGER PRIMARY KEY, without AUTOINCREMENT (which
--   updated `sqlite_sequence` on every insert). Without it SQLite gives a
--   new row the largest seq in the table plus one, so a seq could only be
--   handed out twice if the row holding the largest one went away: the
--   triggers below refuse every DELETE (and UPDATE, so no seq moves), and
--   no code drops or rebuilds the table except a migration like this one,
--   which copies every row with its seq. A number spent on an insert that
--   its dedupe key turned into a no-op, or on a transaction rolled back,
--   belonged to no row anyone could read, so seeing it again later is
--   harmless; readers page by "seq after", which stays increasing.
-- * `events_by_kind` leaves detections out: they are most of the log, and
--   no query looks detections up by kind (the item index below, partial on
--   kind = 'detection', serves `reclassify`; a scan serves the rest).
--   Queries that want it say `kind != 'detection'` so the planner may use it.
--
-- SQLite's procedure for changing a table: a new table, the rows copied,
-- the old one dropped and the new one renamed, then its indexes and
-- triggers made again. Other tables refer to events (seq); `store::migrate`
-- applies migrations with foreign keys off (a DROP would otherwise check
-- them against the old table) and runs `foreign_key_check` before commit.

CREATE TABLE events_v10 (
    -- Global order of observation; never reused (see above).
    seq             INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    state           TEXT,
    treaty          TEXT,
    -- RFC 3339 UTC: when it happened in the world, and when we wrote it down.
    occurred_at     TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    -- JSON of `domain::EventBody`, as serde_json wrote it.
    payload         TEXT    NOT NULL,
    payload_version INTEGER NOT NULL,
    -- Identity of the observation: appending it again is a no-op.
    dedupe_key      TEXT    NOT NULL UNIQUE
);

INSERT INTO events_v10 (seq, kind, state, treaty, occurred_at, recorded_at, payload, payload_version, dedupe_key)
    SELECT seq, kind, state, treaty, occurred_at, recorded_at, payload, payload_version, dedupe_key
    FROM events ORDER BY seq;

DROP TABLE events;
ALTER TABLE events_v10 RENAME TO events;

CREATE INDEX events_by_key ON events (state, treaty, seq);
CREATE INDEX events_by_kind ON events (kind, seq) WHERE kind != 'detection';
-- As migration 0006 made them: queries write these expressions exactly so.
CREATE INDEX events_detection_item ON events (json_extract(payload, '$.item_key'))
    WHERE kind = 'detection';
CREATE INDEX events_retraction_target ON events (json_extract(payload, '$.target_seq'))
    WHERE kind = 'retracted';

-- History is never edited: corrections are new events (asserted, retracted).
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused');
END;
