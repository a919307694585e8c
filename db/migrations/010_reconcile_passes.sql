-- When the mirror was last compared with Temporal, for every worker at once: one pass each interval across
-- them all (the worker holding this row's lock makes it), each over what changed since the last good one.
CREATE TABLE reconcile_passes (
    name text PRIMARY KEY,
    last_start timestamptz,
    last_full timestamptz
);
