"""The `edge-gateway` command line: one module per command group."""
