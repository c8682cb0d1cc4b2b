"""X.509 trust, GSI identity and the TLS/GSS security contexts (sans-IO; no asyncio, no s3dsi.server)."""
