"""The asyncio network layer: accept loop, control connections, data connections, command handlers."""
