"""Allow ``python -m s3dsi``."""

from s3dsi.cli.main import main

raise SystemExit(main())
