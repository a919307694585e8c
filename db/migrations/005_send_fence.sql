-- The one "still wanted" value: the send key of the reminder text the workflow has armed.
ALTER TABLE reminders ADD COLUMN wanted_send text;

-- The send fence: which attempt called the provider for this send key, and when. A claim with no provider
-- id is either live (its attempt is calling now) or in doubt (the attempt died or could not tell whether
-- the provider took it); released claims (the provider surely did not take it) have no claimed_at.
ALTER TABLE messages ADD COLUMN sender text;
ALTER TABLE messages ADD COLUMN attempt text;
ALTER TABLE messages ADD COLUMN claimed_at timestamptz;
-- How often this send was made again after a doubt the provider's records could not settle.
ALTER TABLE messages ADD COLUMN resent integer NOT NULL DEFAULT 0;
-- Where the provider id came from: the provider's answer, its records (a doubt resolved), or a receipt.
ALTER TABLE messages ADD COLUMN recorded_by text;

-- Delivery receipts for provider ids not recorded yet; taken in when the id is.
CREATE TABLE delivery_receipts (
    provider_id     text PRIMARY KEY,
    delivery_status text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);

-- Consent written by the webhook itself, ordered by the provider's own time: a late START never undoes a
-- later STOP, and a STOP wins a tie.
ALTER TABLE opt_outs ADD COLUMN changed_at timestamptz NOT NULL DEFAULT '-infinity';
ALTER TABLE opt_outs ADD COLUMN source text;
ALTER TABLE opt_outs ADD COLUMN message_id text;
ALTER TABLE opt_outs ADD COLUMN note text;
