-- The pipeline's crash trail: when the attempt in flight started (set with `sending`, cleared
-- when its row is written), so a lease taken over from a dead process records an `interrupted`
-- attempt; and which process claimed a schedule fire, so a fire whose claimer died is re-driven.
ALTER TABLE deliveries ADD COLUMN attempt_started_at BIGINT;
ALTER TABLE schedule_fires ADD COLUMN claimed_by TEXT;
