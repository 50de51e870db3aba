"""The local stack's OAuth refresher: the one writer of team OAuth credentials while `nexus dev`
runs (in AWS a scheduled function with reserved concurrency 1 does the same ``run_once``)."""

from __future__ import annotations

import logging
import threading

from nexus.alert_events import Notifier
from nexus.oauth import Refresher
from nexus.secret_store import SecretStore

log = logging.getLogger("nexus.oauth")

CHECK_EVERY_S = 2.0  # a local check is a file read; a proxy's early-refresh request waits at most this


def run(
    store: SecretStore, notifier: Notifier, token_url: str, client_id: str, stop: threading.Event
) -> None:
    refresher = Refresher(store, notifier, token_url=token_url, client_id=client_id)
    while not stop.is_set():
        try:
            refresher.run_once()
        except Exception:  # one bad pass must not end the refresher; the next one tries again
            log.exception("OAuth refresh pass failed")
        stop.wait(CHECK_EVERY_S)
