"""Custom resource handler (behind the CDK Provider framework): apply pending migrations on deploy.

Create and Update migrate; Delete does nothing (the data outlives the resource). An exception fails
the deployment, so a broken migration never leaves new code running on an old schema.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from nexus.db.connect import DatabaseSettings, conninfo
from nexus.db.migrate import migrate

PHYSICAL_ID = "nexus-schema"
logger = Logger()


@logger.inject_lambda_context(log_event=False)
def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    kind = event.get("RequestType")
    if kind == "Delete":
        return {"PhysicalResourceId": event.get("PhysicalResourceId", PHYSICAL_ID)}
    applied = migrate(conninfo(DatabaseSettings(), application_name="nexus-migrate"))
    logger.info("migrations applied", extra={"applied": applied, "request_type": kind})
    return {"PhysicalResourceId": PHYSICAL_ID, "Data": {"Applied": ",".join(applied) or "none"}}
