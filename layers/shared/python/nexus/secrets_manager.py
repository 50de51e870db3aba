"""``SecretStore`` on AWS Secrets Manager: the same key, team and dashboard-key documents the local
stack keeps in its file, one secret each under a per-stage prefix."""

from __future__ import annotations

import contextlib
from typing import Any


def stage_prefix(stage: str) -> str:
    """Every secret of a deployed stage lives under this prefix (the CDK stack creates them there)."""
    return f"{stage}/"


class SecretsManagerStore:
    def __init__(self, client: Any, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self._missing = client.exceptions.ResourceNotFoundException

    def _id(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def get(self, name: str) -> str | None:
        try:
            return str(self.client.get_secret_value(SecretId=self._id(name))["SecretString"])
        except self._missing:
            return None

    def put(self, name: str, value: str) -> None:
        try:
            self.client.put_secret_value(SecretId=self._id(name), SecretString=value)
        except self._missing:
            self.client.create_secret(Name=self._id(name), SecretString=value)

    def delete(self, name: str) -> None:
        with contextlib.suppress(self._missing):
            self.client.delete_secret(SecretId=self._id(name), ForceDeleteWithoutRecovery=True)

    def version(self, name: str) -> object:
        """The AWSCURRENT version id: changes on every put (one API call; callers rate-limit it)."""
        try:
            stages = self.client.describe_secret(SecretId=self._id(name)).get("VersionIdsToStages", {})
        except self._missing:
            return None
        return next((v for v, s in stages.items() if "AWSCURRENT" in s), None)
