"""In-store edge gateway: devices -> lanes -> LAN API -> ledger and outbox -> HQ link."""

__version__ = "0.1.0"
