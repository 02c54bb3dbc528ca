"""The public wire contract shared by the gateway and the HQ service: payload models, topic
names, the event envelope, identifiers and the time format. Pure: no I/O, and it imports
nothing else of either program, so a change here is a change of the contract."""
