-- HQ link (schema v2): prune acked events by age, find refunds whose settlement HQ still
-- owes us, and number the link's birth/death certificates across restarts.
CREATE INDEX outbox_acked_by_age ON outbox(acked_at) WHERE state = 'acked';
CREATE INDEX outbox_awaiting_settlement ON outbox(last_sent_at)
    WHERE type = 'refund.requested' AND ack_status = 'accepted';
INSERT INTO counters (name, value) VALUES ('hq_bd_seq', 0);
