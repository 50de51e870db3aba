"""Dashboard Lambda entry: the same FastAPI app behind Mangum (buffered responses are fine here).

The dashboard key comes from Secrets Manager through Powertools parameters, cached for five minutes
(a rotated key is picked up without a redeploy); the database URL from the environment.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities import parameters
from mangum import Mangum

from nexus_dashboard.app import create_app

_handler: Mangum | None = None


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _handler
    key = parameters.get_secret(os.environ["NEXUS_DASHBOARD_KEY_SECRET"], max_age=300)
    if _handler is None or _handler.app.state.dashboard_key != key:
        _handler = Mangum(create_app(os.environ["DATABASE_URL"], key), lifespan="auto")
    return _handler(event, context)
