-- Lane-bound clients (schema v3): a register or handheld may be bound to one lane; it then
-- hears only that lane's live events and redeems only that lane's badge grants.
ALTER TABLE clients ADD COLUMN lane TEXT
    CHECK (lane IS NULL OR role IN ('register', 'handheld'));
