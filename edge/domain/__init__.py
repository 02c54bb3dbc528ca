"""Pure domain logic: money, sale pricing, refund quotes, tenders and policy. No I/O here."""
