"""Secret storage behind one small interface: a local file for `nexus dev`, Secrets Manager in AWS.

Domain code (keys, teams, the dashboard key) talks to ``SecretStore`` only; it never imports boto3.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class SecretStore(Protocol):
    def get(self, name: str) -> str | None: ...
    def put(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...
    def version(self, name: str) -> object:
        """A cheap token that changes whenever ``name`` may have changed (for cache refresh)."""
        ...


class LocalSecretStore:
    """All secrets in one JSON file, mode 0600, replaced atomically under a file lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> LocalSecretStore:
        """The local stack's store: one file in its data directory, shared by the CLI and the dashboard."""
        return cls(data_dir / "secrets.json")

    def _read(self) -> dict[str, str]:
        try:
            doc: dict[str, str] = json.loads(self.path.read_text())
            return doc
        except FileNotFoundError:
            return {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        lock = self.path.with_suffix(".lock")
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            data = self._read()
            yield data
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)

    def get(self, name: str) -> str | None:
        return self._read().get(name)

    def put(self, name: str, value: str) -> None:
        with self._locked() as data:
            data[name] = value

    def delete(self, name: str) -> None:
        with self._locked() as data:
            data.pop(name, None)

    def version(self, name: str) -> object:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)
