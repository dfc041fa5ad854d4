"""Style reference images: keys in the input bucket, or https:// URLs that only name public places.

The API fetches these URLs from its own network, so a sidecar must not make it reach an internal
address on someone's behalf (docs/REFERENCE.md#the-sidecar).

Resolvers and URL parsers disagree on what a host means: `0x7f.1`, `2130706433` and `0177.0.0.1`
are 127.0.0.1 to inet_aton, `%2e` and a trailing dot are decoded or dropped, a backslash is a `/`
to WHATWG parsers, and IDNA maps `ｌｏｃａｌｈｏｓｔ` to `localhost`. So no refusal list is relied on:
a host is accepted only when it is plainly one of two things, and anything else is refused.

- a DNS name: ASCII labels of letters, digits and inner hyphens, at least two of them, the last
  alphabetic (a real top-level domain, never a number), no trailing dot, not an internal suffix;
- an address written canonically (a dotted quad of decimal octets, or an IPv6 address as Python
  prints it) that is globally routable and embeds no IPv4 address that is not.
"""

from __future__ import annotations

import re
import unicodedata
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import urlsplit

_NOT_A_REFERENCE = "must be an https:// URL or a key in the input bucket"

# A key that a URL parser would read as a URL ("https:\\host", "https:/host", "https:host").
_URL_LIKE_KEY = re.compile(r"(?i)https?:|[a-z][a-z0-9+.-]+:[/\\]")
# Printable ASCII without a backslash: no spaces, tabs, line breaks or characters IDNA could map.
_PLAIN_URL = re.compile(r"[!-\[\]-~]+")
_AUTHORITY = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:]+)\]|(?P<host>[a-z0-9.-]+))(?::(?P<port>[1-9][0-9]{0,4}))?")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # decimal, no leading zero
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_TOP_LABEL = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
_MAX_NAME = 253
_MAX_PORT = 65535

# Names that only mean something inside a network, never on the public internet.
_PRIVATE_SUFFIXES = tuple(
    "." + suffix
    for suffix in (
        *("localhost", "local", "internal", "lan", "home", "corp", "intranet", "localdomain"),
        *("arpa", "test", "invalid", "onion"),
    )
)
# 64:ff9b::/96 (NAT64, RFC 6052) and ::/96 (IPv4-compatible) carry an IPv4 address in the low 32 bits.
_EMBEDS_IN_LOW_BITS = (int(IPv6Address("64:ff9b::")) >> 32, 0)


def is_url(reference: str) -> bool:
    return "://" in reference


def style_reference_problem(reference: str) -> str | None:
    if not reference or reference != reference.strip():
        return f"{_NOT_A_REFERENCE}, without surrounding spaces"
    if not is_url(reference):
        return f"{_NOT_A_REFERENCE}, not {reference!r}" if _URL_LIKE_KEY.match(reference) else None
    if not _PLAIN_URL.fullmatch(reference):
        return (
            "must be an https:// URL of printable ASCII characters without '\\' "
            f"(percent-encode the rest), not {reference!r}"
        )
    try:
        parts = urlsplit(reference)
    except ValueError:
        return f"{_NOT_A_REFERENCE}, not {reference!r}"
    if parts.scheme != "https" or not parts.netloc:
        return f"{_NOT_A_REFERENCE}, not {reference!r}"
    if "@" in parts.netloc:
        return "must not carry credentials in the URL"
    return _authority_problem(parts.netloc)


def _authority_problem(netloc: str) -> str | None:
    authority = _AUTHORITY.fullmatch(netloc.lower())
    if authority is None:
        return _not_public(netloc)
    if authority["port"] and int(authority["port"]) > _MAX_PORT:
        return f"must have a port from 1 to {_MAX_PORT}, not {authority['port']}"
    if authority["ipv6"]:
        return _ipv6_problem(authority["ipv6"])
    return _host_problem(authority["host"])


def _not_public(host: str) -> str:
    return f"must be a public host name or address, not {host}"


def _host_problem(host: str) -> str | None:
    if _DOTTED_QUAD.fullmatch(host):
        return None if _is_public(IPv4Address(host)) else f"must be a public address, not {host}"
    labels = host.split(".")
    if (
        len(host) > _MAX_NAME
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) and _is_plain_label(label) for label in labels)
        or not _TOP_LABEL.fullmatch(labels[-1])
        or host.endswith(_PRIVATE_SUFFIXES)
    ):
        return _not_public(host)
    return None


def _is_plain_label(label: str) -> bool:
    """An IDN label (xn--) must decode to letters, marks and digits that stay non-ASCII."""
    if not label.startswith("xn--"):
        return True
    try:
        decoded = unicodedata.normalize("NFKC", label[4:].encode("ascii").decode("punycode"))
    except (UnicodeError, ValueError, IndexError, OverflowError):
        return False
    return not decoded.isascii() and all(
        char == "-" or unicodedata.category(char)[0] in "LMN" for char in decoded
    )


def _ipv6_problem(text: str) -> str | None:
    try:
        address = IPv6Address(text)
    except ValueError:
        return _not_public(f"[{text}]")
    if str(address) != text:
        return _not_public(f"[{text}] (write it as [{address}])")
    if not _is_public(address) or not all(_is_public(ipv4) for ipv4 in _embedded_ipv4(address)):
        return f"must be a public address, not {text}"
    return None


def _embedded_ipv4(address: IPv6Address) -> list[IPv4Address]:
    """IPv4 addresses a gateway may deliver this IPv6 address to: mapped, 6to4, Teredo, NAT64, compatible."""
    found = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if int(address) >> 32 in _EMBEDS_IN_LOW_BITS:
        found.append(IPv4Address(int(address) & 0xFFFFFFFF))
    return [ipv4 for ipv4 in found if ipv4 is not None]


def _is_public(address: IPv4Address | IPv6Address) -> bool:
    # is_global alone is not enough before Python 3.13: it is true for multicast, for fec0::/10
    # and for ::/96, so those are refused by name.
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not getattr(address, "is_site_local", False)
    )
