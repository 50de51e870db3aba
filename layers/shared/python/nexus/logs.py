"""Log lines in AWS: JSON in Powertools' format for the root logger, so CloudWatch Logs Insights can
query them by field (Lambda functions and ECS tasks alike)."""

from __future__ import annotations

import logging


def json_logging(service: str, level: int = logging.INFO) -> None:
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(LambdaPowertoolsFormatter(service=service))
    logging.basicConfig(handlers=[handler], level=level, force=True)
