-- Running totals of pending offline card refunds per currency (schema v4). The offline cap
-- check reads one row instead of summing every refund that still waits for HQ, so a refund
-- costs the same after a long outage as on an empty ledger. Triggers keep the totals in the
-- same transaction as the change they follow, on every write path: a card tender added to a
-- pending offline refund adds to its currency's total; the refund's leaving `pending`
-- (HQ settled or declined it) takes its card tenders off again.
CREATE TABLE offline_card_pending (
    currency         TEXT PRIMARY KEY,
    amount           INTEGER NOT NULL CHECK (amount >= 0)
);

INSERT INTO offline_card_pending (currency, amount)
SELECT r.currency, sum(t.amount) FROM return_tenders t JOIN returns r USING (return_id)
WHERE r.offline = 1 AND r.status = 'pending' AND t.type = 'card'
GROUP BY r.currency;

CREATE TRIGGER offline_card_pending_added AFTER INSERT ON return_tenders
WHEN NEW.type = 'card'
BEGIN
    INSERT INTO offline_card_pending (currency, amount)
    SELECT currency, NEW.amount FROM returns
    WHERE return_id = NEW.return_id AND offline = 1 AND status = 'pending'
    ON CONFLICT (currency) DO UPDATE SET amount = amount + excluded.amount;
END;

CREATE TRIGGER offline_card_pending_decided AFTER UPDATE OF status ON returns
WHEN OLD.status = 'pending' AND NEW.status <> 'pending' AND OLD.offline = 1
BEGIN
    UPDATE offline_card_pending SET amount = amount - (
        SELECT coalesce(sum(amount), 0) FROM return_tenders
        WHERE return_id = OLD.return_id AND type = 'card'
    ) WHERE currency = OLD.currency;
END;
