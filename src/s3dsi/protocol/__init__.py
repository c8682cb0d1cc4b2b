"""Sans-IO GridFTP protocol core: commands in, reply bytes out; no sockets, no asyncio, no boto3."""
