-- Why a reminder text did not go out when due (quiet_hours).
ALTER TABLE reminders ADD COLUMN reason text;
