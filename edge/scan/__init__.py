"""What a scanned payload means: symbology, GS1 data, and the project's own codes.

Pure functions over strings; the device readers and the lane router call them, and they
never raise on bad input (a garbled scan is still a scan, just with less meaning).
"""
