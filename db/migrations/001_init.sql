CREATE TABLE reminders (
    reminder_id    text PRIMARY KEY,
    contact_number text NOT NULL,
    appointment    timestamptz NOT NULL,
    appt_user_dt   text NOT NULL,
    notify_times   timestamptz[] NOT NULL,
    timezone       text,
    location       text,
    participant    text,
    language       text,
    status         text NOT NULL,
    reminder_sent  boolean NOT NULL DEFAULT false,
    will_attend    boolean,
    confirm_sent   boolean NOT NULL DEFAULT false,
    sent_at        timestamptz,
    seq            integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);

-- Listing, newest appointments last, with or without filters.
CREATE INDEX reminders_by_appointment ON reminders (appointment, reminder_id) WHERE deleted_at IS NULL;
CREATE INDEX reminders_by_contact ON reminders (contact_number, appointment, reminder_id) WHERE deleted_at IS NULL;
CREATE INDEX reminders_by_status ON reminders (status, appointment, reminder_id) WHERE deleted_at IS NULL;
-- Routing an inbound reply: the number's most recently sent reminder.
CREATE INDEX reminders_by_last_sent ON reminders (contact_number, sent_at DESC)
    WHERE sent_at IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE messages (
    id              bigserial PRIMARY KEY,
    reminder_id     text,
    contact_number  text NOT NULL,
    direction       text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    purpose         text,
    body            text NOT NULL,
    provider        text,
    send_key        text UNIQUE,
    provider_id     text,
    at              timestamptz NOT NULL DEFAULT now(),
    delivery_status text,
    delivery_at     timestamptz
);

CREATE INDEX messages_by_reminder ON messages (reminder_id, id);
CREATE UNIQUE INDEX messages_inbound_by_provider_id ON messages (provider, provider_id) WHERE direction = 'inbound';
CREATE INDEX messages_outbound_by_provider_id ON messages (provider_id) WHERE direction = 'outbound';

CREATE TABLE opt_outs (
    contact_number text PRIMARY KEY,
    opted_out      boolean NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
