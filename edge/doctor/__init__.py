"""`edge-gateway doctor`: what store IT checks when a gateway misbehaves, one line each
with what to do (docs/doctor.md). It only looks: it opens the ledger read-only, connects
to the broker with a client of its own, and changes nothing."""
