"""Who a session is: the S3 credential map (~/.globus/s3), login passwords and the authenticator."""
