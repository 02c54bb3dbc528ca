"""The MQTT client both programs use: paho's public API on the asyncio loop."""
