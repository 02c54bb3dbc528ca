"""Lanes: where scans, badge taps and device news go, and who hears them.

Scans are routed to their device's lane, kept briefly for registers that reconnect, and
fanned out to WebSocket subscribers; a manager badge tap becomes a single-use grant.
"""
