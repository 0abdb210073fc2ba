-- The membership baseline: a status row that comes from a membership data
-- file says which one, as of when (JSON, `domain::BaselineRef`), so
-- `status` can name it. NULL for statuses that news or an analyst set.
ALTER TABLE status ADD COLUMN baseline TEXT CHECK (baseline IS NULL OR json_valid(baseline));
