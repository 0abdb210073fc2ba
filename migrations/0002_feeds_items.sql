-- Feed health and conditional-GET validators, and the items seen per feed
-- (kept so `reclassify` can re-run the rules over them).

CREATE TABLE feed_state (
    feed_id              TEXT    PRIMARY KEY,
    -- The URL these fields are about; a new URL in the config starts afresh.
    url                  TEXT    NOT NULL,
    etag                 TEXT,
    last_modified        TEXT,
    last_attempt         TEXT,
    last_success         TEXT,
    -- HTTP status of the last response, NULL when there was none.
    last_status          INTEGER,
    last_error           TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_poll            TEXT,
    -- Set by 410 Gone: not polled again until the URL changes.
    gone                 INTEGER NOT NULL DEFAULT 0,
    -- Where permanent redirects lead, for the user to update the config.
    moved_to             TEXT,
    -- Newest item publication date seen, for staleness.
    last_item_at         TEXT
) WITHOUT ROWID;

CREATE TABLE items (
    feed_id      TEXT NOT NULL,
    item_key     TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    title        TEXT NOT NULL,
    link         TEXT,
    published    TEXT,
    body         TEXT NOT NULL,
    first_seen   TEXT NOT NULL,
    last_changed TEXT NOT NULL,
    PRIMARY KEY (feed_id, item_key)
) WITHOUT ROWID;
