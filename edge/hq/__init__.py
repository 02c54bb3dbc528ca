"""The reference HQ service: consumes gateways' events, settles refunds, keeps the fleet view."""
