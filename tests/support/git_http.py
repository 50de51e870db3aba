"""A private Git host on 127.0.0.1: a local repository served over Git's smart HTTP protocol (dulwich's
own server, ``dulwich.web``) behind HTTP basic auth with one token, as GitHub, GitLab and Bitbucket
take a token. Nothing is faked about the protocol: the prompt library's fetch negotiates and
downloads a pack from it as from a real host."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import make_wsgi_chain


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class PrivateGitHost:
    def __init__(self, root: Path, token: str) -> None:
        self.repo = Repo(str(root))
        git = make_wsgi_chain(DictBackend({b"/acme/prompts.git": self.repo}))
        expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
        self.authorizations: list[str | None] = []  # what each request presented

        def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
            presented = environ.get("HTTP_AUTHORIZATION")
            self.authorizations.append(presented)
            if presented != expected:
                start(
                    "401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Length", "0")]
                )
                return [b""]
            return git(environ, start)

        self.server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/acme/prompts.git"

    def __enter__(self) -> PrivateGitHost:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.repo.close()
