"""Admin actions into the audit log (``nexus.audit``), and the log's read model for its page, JSON
and CSV. Routes that change something an admin owns take an ``Auditor`` (the ``AuditTrail``
dependency) and hand it to the function that does the change, which records the action once it has
succeeded: the page and its JSON twin share that function, so neither can skip the record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast

import psycopg
from fastapi import Depends, Request
from nexus import audit

from nexus_dashboard import throttle
from nexus_dashboard.auth import Caller
from nexus_dashboard.deps import Conn
from nexus_dashboard.schemas import AuditRow


@dataclass(frozen=True, slots=True)
class Auditor:
    conn: psycopg.Connection
    actor: str
    client_address: str | None

    def __call__(self, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        audit.record(self.conn, self.actor, action, target, detail, self.client_address)


def _auditor(request: Request, conn: Conn, who: Caller) -> Auditor:
    return Auditor(conn, who.name, throttle.client_address(request))


AuditTrail = Annotated[Auditor, Depends(_auditor)]


def entries(
    conn: psycopg.Connection,
    limit: int,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> list[AuditRow]:
    return [cast(AuditRow, r) for r in audit.recent(conn, limit, actor, action, since)]
