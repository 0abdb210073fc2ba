-- What `reclassify` looks up per page of stored items: every feed's copy
-- of an item by its key, the detections the log holds for those keys, and
-- whether each of them was retracted. Indexes only; no data changes.

CREATE INDEX items_by_key ON items (item_key);

-- The expressions must be written exactly so in queries for these to serve.
CREATE INDEX events_detection_item ON events (json_extract(payload, '$.item_key'))
    WHERE kind = 'detection';

CREATE INDEX events_retraction_target ON events (json_extract(payload, '$.target_seq'))
    WHERE kind = 'retracted';
