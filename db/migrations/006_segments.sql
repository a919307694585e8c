-- What each text cost: its encoding (GSM-7 or UCS-2) and segments; a reminder's own text's segments.
ALTER TABLE messages ADD COLUMN encoding text;
ALTER TABLE messages ADD COLUMN segments integer;
ALTER TABLE reminders ADD COLUMN segments integer;
