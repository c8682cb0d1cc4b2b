"""Data connections: passive listeners, active connects, stream mode and MODE E framing."""
