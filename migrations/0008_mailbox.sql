-- Messages read from a [[mailbox]] (depositary notifications), one row per
-- message, so each is processed once however often the folder is read.
-- A message is known by its Message-ID (or, without one, its content hash)
-- and its content hash: the same Message-ID with other bytes is read again,
-- and the log's dedupe key (the notice's C.N. reference) keeps a notice
-- delivered twice, by two subscriptions, one observation. Its health and
-- backoff are kept in feed_state under the mailbox id.
CREATE TABLE mailbox_messages (
    mailbox_id   TEXT NOT NULL,
    message_key  TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    seen_at      TEXT NOT NULL,
    -- What the message was: a notice that moved (or may move) a status, a
    -- notice that changes no status (a reservation, an objection), one
    -- about a treaty or state the catalogue cannot map, or not a notice.
    outcome      TEXT NOT NULL CHECK (outcome IN ('notification', 'no_status', 'unmapped', 'unrecognised')),
    -- The C.N. reference, when one was found.
    reference    TEXT,
    subject      TEXT,
    -- Why it is unrecognised or unmapped, in treatywatch's words.
    note         TEXT,
    PRIMARY KEY (mailbox_id, message_key, content_hash)
) WITHOUT ROWID;
