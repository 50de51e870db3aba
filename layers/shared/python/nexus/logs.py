"""Log lines in AWS: JSON in Powertools' format for the root logger, so CloudWatch Logs Insights can
query them by field (Lambda functions and ECS tasks alike)."""

from __future__ import annotations

import logging


class PowertoolsFormatter(logging.Formatter):
    """Powertools' JSON formatter, imported when the first line is written: importing it imports all
    of Powertools (15-20 ms), which a new Lambda sandbox would otherwise pay before its first answer,
    and a relay or the proxy usually writes no line at all."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._inner: logging.Formatter | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._inner is None:
            from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

            self._inner = LambdaPowertoolsFormatter(service=self.service)
        return self._inner.format(record)


def json_logging(service: str, level: int = logging.INFO) -> None:
    """JSON log lines for the root logger; record ids and other fields travel in each line's extras."""
    handler = logging.StreamHandler()
    handler.setFormatter(PowertoolsFormatter(service))
    logging.basicConfig(handlers=[handler], level=level, force=True)
