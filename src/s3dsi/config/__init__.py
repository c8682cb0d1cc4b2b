"""Settings from /etc/gridftp.conf, /etc/gridftp.d, the S3 connector conf, environment and flags."""
