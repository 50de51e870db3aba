"""Images in client messages, turned into Anthropic image blocks.

- ``data:`` URLs are decoded in place.
- ``http(s)`` URLs are fetched by the gateway, guarded against server-side request forgery: the host
  is resolved first and every address must be public (no loopback, private, link-local, metadata,
  multicast, reserved or unspecified address, IPv4-mapped forms included); the connection goes to
  the address that was checked (no second lookup an attacker's DNS could answer differently);
  redirects are followed by hand and each hop is checked again; size and time are capped; only
  image types pass.
- Anything else (a local path, ``file:``) is refused: the gateway never reads its own disk for a
  client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import ResolveResult

from nexus_gateway.errors import GatewayError, bad_request

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # Anthropic's per-image limit for base64 images
MAX_REDIRECTS = 3


@dataclass(frozen=True, slots=True)
class FetchLimits:
    max_bytes: int = MAX_IMAGE_BYTES
    timeout_s: float = 10.0
    # Tests point the guard at a local server; never set in production.
    allow_private: bool = False


def _sniff(data: bytes) -> str | None:
    """The image type from its magic bytes (a server's content-type can lie)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _block(data: bytes, param: str) -> dict[str, Any]:
    kind = _sniff(data)
    if kind is None:
        raise bad_request(f"{param}: not a PNG, JPEG, GIF or WebP image", param, "invalid_image")
    if len(data) > MAX_IMAGE_BYTES:
        raise bad_request(
            f"{param}: image larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB", param, "image_too_large"
        )
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": kind, "data": base64.b64encode(data).decode()},
    }


def from_data_url(url: str, param: str) -> dict[str, Any]:
    head, comma, payload = url.partition(",")
    if not comma or ";base64" not in head:
        raise bad_request(
            f"{param}: a data URL must be base64 (data:image/png;base64,...)", param, "invalid_image"
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{param}: the data URL's base64 does not decode", param, "invalid_image") from None
    return _block(data, param)


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
        elif ip.teredo is not None:
            ip = ip.teredo[1]
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)


async def _resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
        raise GatewayError(
            400, f"image URL host {host!r} does not resolve", code="invalid_image_url"
        ) from exc
    return [str(info[4][0]) for info in infos]


class _PinnedResolver(aiohttp.abc.AbstractResolver):
    """Answers aiohttp's lookup with the addresses already checked, so the connection goes where
    the guard looked."""

    def __init__(self, host: str, addresses: list[str]) -> None:
        self.host = host
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def _checked_addresses(url: str, limits: FetchLimits, param: str) -> tuple[str, list[str]]:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a bracketed host that is no IPv6 address, a port out of range
        raise bad_request(f"{param}: not a valid URL ({exc})", param, "invalid_image_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request(
            f"{param}: only http(s) and data: image URLs are accepted", param, "invalid_image_url"
        )
    if parts.username or parts.password:
        raise bad_request(f"{param}: credentials in image URLs are not accepted", param, "invalid_image_url")
    addresses = await _resolve(parts.hostname, port)
    if not limits.allow_private:
        blocked = [a for a in addresses if not public_address(a)]
        if blocked:
            raise GatewayError(
                400,
                f"{param}: image URL host {parts.hostname!r} resolves to a non-public address "
                f"({blocked[0]}); "
                "the gateway fetches images from the public internet only",
                param=param,
                code="invalid_image_url",
            )
    return parts.hostname, addresses


async def fetch(url: str, param: str, limits: FetchLimits = FetchLimits()) -> dict[str, Any]:
    """The image at ``url`` as an Anthropic image block, or a 400 that says what was wrong."""
    try:
        async with asyncio.timeout(limits.timeout_s):
            for _ in range(MAX_REDIRECTS + 1):
                host, addresses = await _checked_addresses(url, limits, param)
                connector = aiohttp.TCPConnector(
                    resolver=_PinnedResolver(host, addresses), use_dns_cache=False
                )
                async with (
                    aiohttp.ClientSession(connector=connector) as session,
                    session.get(url, allow_redirects=False, headers={"accept": "image/*"}) as resp,
                ):
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get("location")
                        if not location:
                            break
                        url = urljoin(url, location)  # checked again at the top of the loop
                        continue
                    if resp.status != 200:
                        raise bad_request(
                            f"{param}: fetching the image gave HTTP {resp.status}", param, "invalid_image_url"
                        )
                    declared = resp.content_length
                    if declared is not None and declared > limits.max_bytes:
                        raise bad_request(
                            f"{param}: image larger than {limits.max_bytes} bytes", param, "image_too_large"
                        )
                    data = bytearray()
                    async for chunk in resp.content.iter_chunked(65536):
                        data += chunk
                        if len(data) > limits.max_bytes:
                            raise bad_request(
                                f"{param}: image larger than {limits.max_bytes} bytes",
                                param,
                                "image_too_large",
                            )
                    return _block(bytes(data), param)
            raise bad_request(f"{param}: too many redirects", param, "invalid_image_url")
    except TimeoutError:
        raise bad_request(
            f"{param}: fetching the image took longer than {limits.timeout_s:g} s", param, "image_timeout"
        ) from None
    except aiohttp.ClientError as exc:
        raise bad_request(
            f"{param}: could not fetch the image ({exc.__class__.__name__})", param, "invalid_image_url"
        ) from None


async def image_block(url: str, param: str, limits: FetchLimits = FetchLimits()) -> dict[str, Any]:
    if url.startswith("data:"):
        return from_data_url(url, param)
    if url.lower().startswith(("http://", "https://")):
        return await fetch(url, param, limits)
    raise bad_request(
        f"{param}: image URLs must be data: or http(s) URLs; local paths and file: URLs are refused",
        param,
        "invalid_image_url",
    )
