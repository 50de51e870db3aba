"""AWS clients as the Lambda functions use them: fail fast and retry a little, because a caller
(a streaming client, a browser) is waiting meanwhile.

botocore directly, one session per process: boto3 adds nothing these functions call, and its import
and its extra set-up per client (S3's transfer manager) are paid on every cold start.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.config import Config

CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 4, "mode": "standard"})

_session: Any = None
_lock = threading.Lock()  # botocore sessions are not thread-safe; clients are


def client(service: str, config: Config = CLIENT_CONFIG) -> Any:
    """A client for ``service`` in the environment's region and credentials (``AWS_ENDPOINT_URL``
    is honoured); ``config`` for a call that is slow by nature (one function waiting for another).
    The proxy does not use these: see ``nexus.aws_calls``."""
    global _session
    with _lock:
        if _session is None:
            import botocore.session

            _session = botocore.session.get_session()
        return _session.create_client(service, config=config)
