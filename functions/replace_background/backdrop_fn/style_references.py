"""Style reference images: keys in the input bucket, or https:// URLs that only name public places.

The API fetches these URLs from its own network, so a sidecar must not make it reach an internal
address on someone's behalf (docs/REFERENCE.md#the-sidecar).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_url(reference: str) -> bool:
    return "://" in reference


def style_reference_problem(reference: str) -> str | None:
    if not reference or reference != reference.strip():
        return "must be an https:// URL or a key in the input bucket, without surrounding spaces"
    if not is_url(reference):
        return None
    try:
        parts = urlsplit(reference)
        parts.port  # noqa: B018 (it raises on a malformed port)
    except ValueError:
        return f"must be an https:// URL or a key in the input bucket, not {reference!r}"
    if parts.scheme != "https" or not parts.hostname:
        return f"must be an https:// URL or a key in the input bucket, not {reference!r}"
    if parts.username or parts.password:
        return "must not carry credentials in the URL"
    return _host_problem(parts.hostname)


# Names that only mean something inside a network, never on the public internet.
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home", ".corp", ".intranet")


def _host_problem(host: str) -> str | None:
    """The API fetches these URLs from its own network: only public places may be named."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        mapped = getattr(address, "ipv4_mapped", None)
        if not address.is_global or (mapped is not None and not mapped.is_global):
            return f"must be a public address, not {host}"
        return None
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith(_PRIVATE_SUFFIXES):
        return f"must be a public address, not {host}"
    labels = lowered.split(".")
    # "2130706433", "0x7f.1" or "0177.0.0.1" are 127.0.0.1 to many resolvers; "metadata" is a
    # single-label intranet name: a public host has a dotted name ending in letters.
    if len(labels) < 2 or not any(ch.isalpha() for ch in labels[-1]) or lowered.startswith("0x"):
        return f"must be a public host name or address, not {host}"
    return None
