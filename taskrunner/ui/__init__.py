"""The web console's files: `STATIC` is served at `/ui/static`.

`STATIC / "vendor"` holds the pinned copies of the front-end packages that the console,
`/docs` and `/redoc` use (Mermaid, htmx, Swagger UI, Redoc), so that no page of the app
loads anything from another host. `scripts/vendor_assets.py` re-creates them and their
`MANIFEST.json` from npm.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
VENDOR = STATIC / "vendor"
