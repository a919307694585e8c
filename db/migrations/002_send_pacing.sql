-- The next free send slot of each sending number, shared by every worker.
CREATE TABLE send_pacing (
    sender    text PRIMARY KEY,
    next_slot timestamptz NOT NULL
);
