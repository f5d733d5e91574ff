"""One router module per resource; ``ROUTERS`` is the list ``create_app`` mounts under ``/api/v1``."""

from __future__ import annotations

from lungcad.service.api import admin, analyses, audit, batches, configs, dicomweb, models, studies, worklist
from lungcad.service.api import experiments as experiments_api
from lungcad.service.api import model_export as model_export_api

ROUTERS = [r.router for r in (studies, dicomweb, analyses, batches, worklist, models, configs, admin, audit)]
ROUTERS += [experiments_api.router, model_export_api.router]  # issue 14: experiments, model export

from lungcad.service.api import cohorts as cohorts_api  # noqa: E402 - issue 14: training as a service
from lungcad.service.api import training as training_api  # noqa: E402

ROUTERS += [cohorts_api.router, training_api.router]

from lungcad.service.api import webhooks as webhooks_api  # noqa: E402 - issue 13: webhooks

ROUTERS += [webhooks_api.router]

from lungcad.service.api import viewer as viewer_api  # noqa: E402 - issue 15: the dashboard's CT viewer

ROUTERS += [viewer_api.router]

from lungcad.service.api import deliveries as deliveries_api  # noqa: E402 - issue 16: result delivery

ROUTERS += [deliveries_api.router]

from lungcad.service.api import comparisons as comparisons_api  # noqa: E402 - issue 17: comparison with priors

ROUTERS += [comparisons_api.router]
