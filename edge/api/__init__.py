"""The LAN API that registers and handhelds call (aiohttp), per the public contract."""
