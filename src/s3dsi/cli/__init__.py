"""The ``s3dsi`` command: one module per subcommand, each exposing ``register(subparsers)``."""
