"""The HQ link over MQTT: relay, health, alerts, commands, order look-up."""
