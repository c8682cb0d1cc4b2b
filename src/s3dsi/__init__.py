"""s3dsi: a GridFTP-compatible transfer daemon that stores data in S3."""

__version__ = "0.1.0"
