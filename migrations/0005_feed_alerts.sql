-- Source-health alert bookkeeping per feed (see src/health.rs). With it an
-- alert is recorded once per episode, in the same transaction as the feed
-- state that caused it. Feeds of an older database start with no episode
-- open: one already failing is announced when it next fails.
-- When the current run of failures began; NULL while the feed is healthy.
ALTER TABLE feed_state ADD COLUMN failing_since TEXT;
-- A failing alert was recorded for that run; its recovery will be too.
ALTER TABLE feed_state ADD COLUMN failing_alerted INTEGER NOT NULL DEFAULT 0;
-- The newest item's date a stale alert was recorded for; NULL when none is open.
ALTER TABLE feed_state ADD COLUMN stale_since TEXT;
