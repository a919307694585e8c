ALTER TABLE reminders ADD COLUMN notify_windows integer[] NOT NULL DEFAULT '{}';
-- A hash of the body of a create sent with an Idempotency-Key: the same key with another body is refused.
ALTER TABLE reminders ADD COLUMN request_hash text;
