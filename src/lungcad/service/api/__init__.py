"""One router module per resource; ``ROUTERS`` is the list ``create_app`` mounts under ``/api/v1``."""

from __future__ import annotations

from lungcad.service.api import admin, analyses, audit, batches, configs, dicomweb, models, studies, worklist

ROUTERS = [r.router for r in (studies, dicomweb, analyses, batches, worklist, models, configs, admin, audit)]
