-- What ingest asks of every item it parses: seen before in this feed, and
-- with which content hash? An `items` row holds the item's text (~3 KB,
-- mostly on overflow pages, and a WITHOUT ROWID table reads a spilled row
-- whole for each key comparison), so that lookup read several pages per
-- item. This covering index holds only the key and the hash (~150 bytes an
-- entry): the lookup reads one index page and never the text. Being an
-- index it is written with its row, in the same transaction, and built
-- from the existing rows here, inside the migration's transaction. Queries
-- name it (INDEXED BY): the planner would otherwise take the primary key.

CREATE INDEX items_seen ON items (feed_id, item_key, content_hash);
