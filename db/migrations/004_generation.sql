-- The reminder's schedule generation, bumped by every reschedule: a send armed for an earlier schedule
-- compares it at its time and stands down.
ALTER TABLE reminders ADD COLUMN generation integer NOT NULL DEFAULT 0;
