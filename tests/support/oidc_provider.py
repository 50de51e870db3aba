"""A small OpenID Connect provider for tests: discovery, JWKS, an authorization endpoint that signs
the configured person in at once, and a token endpoint that checks the code, the redirect URI, the
client and the PKCE verifier before it hands out an RS256-signed ID token.

Its knobs make it misbehave the ways a real provider (or an attacker in between) could: another
issuer or audience in the token, an expired token, a wrong nonce, a signature by a key the JWKS does
not publish."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Person:
    sub: str
    email: str
    groups: list[str]


@dataclass
class OidcProvider:
    client_id: str = "nexus-dashboard"
    person: Person = field(
        default_factory=lambda: Person("sub-ann", "ann@example.com", ["member", "team:alpha"])
    )
    # Misbehaviour, for the checks on the dashboard's side:
    token_issuer: str | None = None
    token_audience: str | None = None
    expires_in: int = 300
    wrong_nonce: bool = False
    foreign_key: bool = False
    key: rsa.RSAPrivateKey = field(default_factory=_key)
    other_key: rsa.RSAPrivateKey = field(default_factory=_key)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def start(self) -> OidcProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider.discovery())
                elif url.path == "/jwks":
                    self._json(200, provider.jwks())
                elif url.path == "/authorize":
                    status, location = provider.authorize(q)
                    self.send_response(status)
                    self.send_header("location", location)
                    self.send_header("content-length", "0")
                    self.end_headers()
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                status, body = provider.token(form)
                self._json(status, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        self.token_issuer = self.token_audience = None
        self.expires_in, self.wrong_nonce, self.foreign_key = 300, False, False
        self.person = Person("sub-ann", "ann@example.com", ["member", "team:alpha"])

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    def authorize(self, q: dict[str, str]) -> tuple[int, str]:
        if q.get("client_id") != self.client_id or q.get("code_challenge_method") != "S256":
            refused = urlencode({"error": "invalid_request", "state": q.get("state", "")})
            return 302, f"{q.get('redirect_uri', '/')}?{refused}"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {**q, "person": self.person}
        return 302, f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        asked = self.codes.pop(form.get("code", ""), None)
        if asked is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != asked["redirect_uri"] or form.get("client_id") != self.client_id:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != asked["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        person: Person = asked["person"]
        now = int(time.time())
        claims = {
            "iss": self.token_issuer or self.issuer,
            "aud": self.token_audience or self.client_id,
            "sub": person.sub,
            "email": person.email,
            "email_verified": True,
            "cognito:groups": person.groups,
            "nonce": "not-the-nonce" if self.wrong_nonce else asked["nonce"],
            "iat": now,
            "exp": now + self.expires_in,
        }
        signer = self.other_key if self.foreign_key else self.key
        id_token = jwt.encode(claims, signer, algorithm="RS256", headers={"kid": "k1"})
        return 200, {"id_token": id_token, "access_token": "at", "token_type": "Bearer", "expires_in": 300}
