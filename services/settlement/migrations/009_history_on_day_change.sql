-- A position is stored once: the contract's current one lives in positions with the day it was computed, and
-- moves to position_history (as that day's last) only when a position of a later day replaces it, rather than
-- being written to both tables every time.
ALTER TABLE {schema}.positions ADD COLUMN day date;
UPDATE {schema}.positions SET day = updated_at::date;
ALTER TABLE {schema}.positions ALTER COLUMN day SET DEFAULT current_date, ALTER COLUMN day SET NOT NULL;
