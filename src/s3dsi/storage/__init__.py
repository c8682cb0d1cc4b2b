"""The DSI seam: a small blocking ``Backend`` protocol with S3 and in-memory implementations."""
