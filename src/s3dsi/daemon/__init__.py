"""Running s3dsi for real: process models and privilege drops, signals, systemd notification, the admin
socket, the metrics endpoint, the demo mode."""
