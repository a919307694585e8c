-- The business side: events out, replies a person must read, and the reminder text's delivery status.

-- The delivery status of the reminder's latest reminder text, from its receipt.
ALTER TABLE reminders ADD COLUMN delivery_status text;

-- A received text nobody's workflow could answer (not understood, or after the answer window) waits in the
-- inbox until a person marks it done.
ALTER TABLE messages ADD COLUMN needs_attention boolean NOT NULL DEFAULT false;
ALTER TABLE messages ADD COLUMN attention_done_at timestamptz;
CREATE INDEX messages_needing_attention ON messages (at, id) WHERE needs_attention AND attention_done_at IS NULL;
CREATE INDEX messages_by_contact ON messages (contact_number, at);

-- Every change of a reminder and every reply that needs a person, kept EVENT_RETENTION_DAYS. `data` is the
-- row as it was written (the API shows it as GET does). Written by triggers, so by the very statement that
-- makes the change, whoever runs it.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    type        text NOT NULL,
    reminder_id text,
    message_id  bigint,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    data        jsonb NOT NULL
);
CREATE INDEX events_by_at ON events (at);

-- The receivers (EVENT_WEBHOOK_URL) and, for each, the events it has not acknowledged yet. A receiver's
-- queue is filled by the same trigger, so an event committed late is never skipped by a cursor.
CREATE TABLE event_receivers (
    id      serial PRIMARY KEY,
    url     text NOT NULL UNIQUE,
    active  boolean NOT NULL DEFAULT true,
    lost    bigint NOT NULL DEFAULT 0
);
CREATE TABLE event_queue (
    receiver    integer NOT NULL REFERENCES event_receivers ON DELETE CASCADE,
    event_id    bigint NOT NULL REFERENCES events ON DELETE CASCADE,
    ordering    text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (receiver, event_id)
);
-- Each receiver's next event per reminder (events of one reminder go out in order).
CREATE INDEX event_queue_heads ON event_queue (receiver, ordering, event_id);
CREATE INDEX event_queue_by_event ON event_queue (event_id);

CREATE FUNCTION emit_event(kind text, reminder text, message bigint, ordering text, payload jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    made bigint;
BEGIN
    INSERT INTO events (type, reminder_id, message_id, data) VALUES (kind, reminder, message, payload)
    RETURNING id INTO made;
    INSERT INTO event_queue (receiver, event_id, ordering)
    SELECT id, made, ordering FROM event_receivers WHERE active;
END $$;

-- A reminder's events, from how its row changed: the API's first row is `reminder.scheduled`; a row removed
-- because its workflow could not be started is `reminder.deleted`.
CREATE FUNCTION reminder_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_status text := 'scheduled';
    was_sent timestamptz;
    was_delivery text;
    kinds text[] := '{}';
    kind text;
    payload jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.deleted_at IS NULL THEN
            PERFORM emit_event('reminder.deleted', OLD.reminder_id, NULL, OLD.reminder_id,
                               to_jsonb(OLD) || jsonb_build_object('deleted_at', now()));
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        kinds := kinds || 'reminder.scheduled'::text;
    ELSE
        was_status := OLD.status; was_sent := OLD.sent_at; was_delivery := OLD.delivery_status;
        IF NEW.generation > OLD.generation THEN
            kinds := kinds || 'reminder.rescheduled'::text;
        END IF;
    END IF;
    IF NEW.sent_at IS NOT NULL AND NEW.sent_at IS DISTINCT FROM was_sent THEN
        kinds := kinds || 'reminder.sent'::text;
    END IF;
    IF NEW.delivery_status IS DISTINCT FROM was_delivery AND NEW.delivery_status IS NOT NULL THEN
        IF lower(NEW.delivery_status) = 'delivered' THEN
            kinds := kinds || 'reminder.delivered'::text;
        ELSIF lower(NEW.delivery_status) IN ('failed', 'undelivered', 'rejected', 'expired', 'canceled') THEN
            kinds := kinds || 'reminder.failed'::text;
        END IF;
    END IF;
    IF NEW.status IS DISTINCT FROM was_status THEN
        kind := CASE NEW.status
            WHEN 'confirmed' THEN 'reminder.confirmed'
            WHEN 'declined' THEN 'reminder.declined'
            WHEN 'no_response' THEN 'reminder.no_response'
            WHEN 'opted_out' THEN 'reminder.opted_out'
            WHEN 'failed' THEN 'reminder.failed'
            WHEN 'not_sent' THEN 'reminder.not_sent'
        END;
        IF kind IS NOT NULL AND NOT kind = ANY(kinds) THEN
            kinds := kinds || kind;
        END IF;
    END IF;
    IF NEW.deleted_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.deleted_at IS NULL) THEN
        kinds := kinds || 'reminder.deleted'::text;
    END IF;
    IF cardinality(kinds) = 0 THEN
        RETURN NULL;
    END IF;
    payload := to_jsonb(NEW);
    FOREACH kind IN ARRAY kinds LOOP
        PERFORM emit_event(kind, NEW.reminder_id, NULL, NEW.reminder_id, payload);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER reminder_events AFTER INSERT OR UPDATE OR DELETE ON reminders
    FOR EACH ROW EXECUTE FUNCTION reminder_events();

CREATE FUNCTION message_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.needs_attention AND NEW.attention_done_at IS NULL
       AND (TG_OP = 'INSERT' OR NOT OLD.needs_attention) THEN
        PERFORM emit_event('reply.needs_attention', NEW.reminder_id, NEW.id,
                           coalesce(NEW.reminder_id, 'contact:' || NEW.contact_number), to_jsonb(NEW));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER message_events AFTER INSERT OR UPDATE OF needs_attention ON messages
    FOR EACH ROW EXECUTE FUNCTION message_events();

-- Who is coming: a day's list and a month's report read the appointments of a range.
CREATE INDEX reminders_report ON reminders (appointment)
    INCLUDE (status, reminder_sent, delivery_status, will_attend) WHERE deleted_at IS NULL;
