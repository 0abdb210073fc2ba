-- The fold's working state per (state, treaty): the status row plus reports
-- still waiting for corroboration. With it an append folds only its new
-- events instead of re-reading the key's history. A cache like `status`:
-- missing or stale rows are rebuilt from the log.
CREATE TABLE fold_state (
    state    TEXT    NOT NULL,
    treaty   TEXT    NOT NULL,
    -- Highest event folded into `fold`.
    last_seq INTEGER NOT NULL,
    fold     TEXT    NOT NULL CHECK (json_valid(fold)),
    PRIMARY KEY (state, treaty)
) WITHOUT ROWID;
