"""Input devices: keyboard-wedge and serial scanners, NFC and PC/SC readers.

Readers turn hardware input into complete payloads and hand them to a sink (the lane
router); they never crash the daemon on bad input or a vanished device.
"""
