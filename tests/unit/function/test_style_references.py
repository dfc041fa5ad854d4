"""Style reference URLs name only public places (docs/REFERENCE.md#the-sidecar).

The API fetches these URLs from its own network. Whatever spelling a resolver or URL parser would
read as an internal address must be refused here, before any paid call. No name is resolved: unit
tests run under a socket guard.
"""

from __future__ import annotations

import ipaddress
import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backdrop_fn.errors import InvalidSidecar
from backdrop_fn.sidecar import parse_sidecar
from backdrop_fn.style_references import is_url, style_reference_problem


def sidecar_with(reference: str) -> bytes:
    return json.dumps({"prompt": "x", "style_reference_images": [reference]}).encode()


def refusal(reference: str) -> str:
    with pytest.raises(InvalidSidecar) as caught:
        parse_sidecar(sidecar_with(reference))
    return caught.value.message


REFUSED = [
    # Legacy IPv4 spellings that inet_aton and many URL parsers read as an internal address.
    "https://0x7f.0.0.1/a.png",
    "https://0177.0.0.1/a.png",
    "https://0x7f000001/a.png",
    "https://2130706433/a.png",
    "https://017700000001/a.png",
    "https://127.1/a.png",
    "https://127.0.1/a.png",
    "https://0x7f.1/a.png",
    "https://0/a.png",
    "https://0.0.0.0/a.png",
    "https://0251.0376.0251.0376/latest/meta-data/",
    "https://0xa9.0xfe.0xa9.0xfe/latest/meta-data/",
    "https://0xA9FEA9FE/latest/meta-data/",
    "https://2852039166/latest/meta-data/",
    "https://169.254.43518/latest/meta-data/",
    "https://169.16689662/latest/meta-data/",
    "https://10.1/a.png",
    "https://010.0.0.1/a.png",
    "https://08.08.08.08/a.png",
    "https://1.2.3.4.5/a.png",
    # Canonical internal addresses.
    "https://127.0.0.1/a.png",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.7/a.png",
    "https://100.64.0.1/a.png",
    "https://224.0.0.1/a.png",
    "https://240.0.0.1/a.png",
    "https://255.255.255.255/a.png",
    # A trailing dot, or percent-encoding in the host.
    "https://127.0.0.1./a.png",
    "https://169.254.169.254./latest/meta-data/",
    "https://localhost./a.png",
    "https://metadata.google.internal./computeMetadata/v1/",
    "https://images.example.com./a.png",
    "https://169.254.169.254%2e/latest/meta-data/",
    "https://127%2e0%2e0%2e1/a.png",
    "https://%31%32%37.0.0.1/a.png",
    "https://localhost%2e/a.png",
    "https://images%2eexample.com/a.png",
    # Backslashes, which WHATWG parsers read as '/'.
    "https://evil.com\\@169.254.169.254/",
    "https:\\\\169.254.169.254/",
    "https:/\\169.254.169.254/",
    "https:\\/169.254.169.254/",
    "https://\\169.254.169.254/",
    "https://images.example.com/a\\b.png",
    "https:169.254.169.254/latest/meta-data/",
    "https:/169.254.169.254/latest/meta-data/",
    # IPv6, bare or embedding an internal IPv4 address.
    "https://[::1]/a.png",
    "https://[::]/a.png",
    "https://[fe80::1]/a.png",
    "https://[fec0::1]/a.png",
    "https://[fc00::1]/a.png",
    "https://[ff0e::1]/a.png",
    "https://[::a9fe:a9fe]/latest/meta-data/",
    "https://[::169.254.169.254]/latest/meta-data/",
    "https://[::127.0.0.1]/a.png",
    "https://[::ffff:169.254.169.254]/latest/meta-data/",
    "https://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "https://[0:0:0:0:0:ffff:7f00:1]/a.png",
    "https://[2002:a9fe:a9fe::]/latest/meta-data/",
    "https://[2002:7f00:1::1]/a.png",
    "https://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "https://[64:ff9b::169.254.169.254]/latest/meta-data/",
    "https://[2001:0:a9fe:a9fe::]/a.png",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/a.png",
    "https://[fe80::1%25eth0]/a.png",
    "https://[fe80::1%eth0]/a.png",
    "https://[2606:2800:0220:0001:0248:1893:25c8:1946]/a.png",
    "https://[::1/a.png",
    # User information, whatever it holds.
    "https://user:pass@images.example.com/a.png",
    "https://user@images.example.com/a.png",
    "https://@images.example.com/a.png",
    "https://:@169.254.169.254/",
    "https://images.example.com@169.254.169.254/",
    # Non-ASCII hosts, which IDNA mapping can turn into something else.
    "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/a.png",
    "https://\u2460\u2461\u2466.\u24ea.\u24ea.\u2460/a.png",
    "https://169\u3002254\u3002169\u3002254/latest/meta-data/",
    "https://169\uff0e254\uff0e169\uff0e254/latest/meta-data/",
    "https://ex\u0430mple.com/a.png",
    "https://images.example.com/caf\u00e9.png",
    "https://images.example.com/a\tb.png",
    "https://xn--localhost-.com/a.png",
    "https://printer.xn--" + "\uff4c\uff4f\uff43\uff41\uff4c".encode("punycode").decode() + "/a.png",
    "https://images.xn--/a.png",
    # Names that only mean something inside a network.
    "https://localhost/a.png",
    "https://app.localhost/a.png",
    "https://metadata/computeMetadata/v1/",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://instance-data.ec2.internal/latest/meta-data/",
    "https://printer.local/a.png",
    "https://kubernetes.default.svc.cluster.local/a.png",
    "https://nas.home.arpa/a.png",
    "https://router.lan/a.png",
    "https://host.localdomain/a.png",
    "https://intranet/a.png",
    # A numeric or hexadecimal last label, or labels no DNS name has.
    "https://images.example.123/a.png",
    "https://images.example.0x7f/a.png",
    "https://images..example.com/a.png",
    "https://-images.example.com/a.png",
    "https://images_1.example.com/a.png",
    f"https://{'a' * 64}.example.com/a.png",
    # Not https, no host, or a malformed port.
    "http://images.example.com/a.png",
    "file:///etc/passwd",
    "gopher://images.example.com/a",
    "https:///a.png",
    "https:////169.254.169.254/",
    "https://images.example.com:99999/a.png",
    "https://images.example.com:0/a.png",
    "https://images.example.com:/a.png",
    "https://images.example.com:+443/a.png",
]

ACCEPTED = [
    "https://images.example.com/a.png",
    "https://cdn.shop.co.uk:8443/x.jpg?v=1",
    "https://93.184.216.34/a.png",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/a.png",
    "https://[2606:2800:220:1:248:1893:25C8:1946]/a.png",
    "https://IMAGES.Example.COM/a.png",
    "HTTPS://images.example.com/a.png",
    "https://8.8.8.8/a.png",
    "https://x.co/a?b=c",
    "https://images.example.com",
    "https://images.example.com/a%20b.png#top",
    "https://s3.eu-west-1.amazonaws.com/bucket/a.png",
    "https://123.example.com/a.png",
    "https://xn--bcher-kva.example/a.png",
    "https://shop.xn--p1ai/a.png",
    "styles/ref.png",
    "styles/a:b.png",
    "../../etc/passwd",
]


@pytest.mark.parametrize("url", REFUSED)
def test_style_references_to_internal_or_ambiguous_places_are_refused(url: str):
    assert "style_reference_images: [0] " in refusal(url)


@pytest.mark.parametrize("url", ACCEPTED)
def test_style_references_to_public_places_and_keys_are_accepted(url: str):
    assert parse_sidecar(sidecar_with(url)).style_reference_images == [url]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://169.254.169.254/x", "must be a public address, not 169.254.169.254"),
        ("https://[::ffff:a9fe:a9fe]/x", "must be a public address, not ::ffff:a9fe:a9fe"),
        ("https://0x7f.0.0.1/x", "must be a public host name or address, not 0x7f.0.0.1"),
        ("https://localhost./x", "must be a public host name or address, not localhost."),
        ("https://127%2e0%2e0%2e1/x", "must be a public host name or address, not 127%2e0%2e0%2e1"),
        ("https://user@example.com/x", "must not carry credentials in the URL"),
        ("https://evil.com\\@10.0.0.1/x", "must be an https:// URL of printable ASCII"),
        ("https:\\\\10.0.0.1/x", "must be an https:// URL or a key in the input bucket"),
    ],
)
def test_refusals_say_what_is_wrong(url: str, message: str):
    assert f"style_reference_images: [0] {message}" in refusal(url)


def test_only_references_with_a_scheme_separator_are_urls():
    assert is_url("https://images.example.com/a.png")
    assert not is_url("styles/ref.png")


# Every IPv4 address in these ranges is internal; the property renders each in the spellings
# resolvers and URL parsers accept, and expects every one of them to be refused.
INTERNAL_NETWORKS = [
    ipaddress.ip_network(net)
    for net in (
        *("0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12"),
        *("192.168.0.0/16", "100.64.0.0/10", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4"),
    )
]


@st.composite
def internal_ipv4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    network = draw(st.sampled_from(INTERNAL_NETWORKS))
    offset = draw(st.integers(0, network.num_addresses - 1))
    return ipaddress.IPv4Address(int(network.network_address) + offset)


def octet(value: int, style: str) -> str:
    return {"dec": str(value), "hex": hex(value), "HEX": f"0X{value:X}", "oct": f"0{value:o}"}[style]


def legacy_spellings(address: ipaddress.IPv4Address, style: str) -> list[str]:
    """What inet_aton accepts for this address: every octet style and every short form."""
    a, b, c, d = address.packed
    value = int(address)
    return [
        ".".join(octet(part, style) for part in (a, b, c, d)),
        ".".join([octet(a, style), octet(b, style), octet(c << 8 | d, style)]),
        ".".join([octet(a, style), octet(value & 0xFFFFFF, style)]),
        octet(value, style),
    ]


def ipv6_forms(address: ipaddress.IPv4Address) -> list[str]:
    low = int(address)
    return [
        f"[::ffff:{address}]",
        f"[{ipaddress.IPv6Address(0xFFFF << 32 | low)}]",
        f"[::{address}]",
        f"[{ipaddress.IPv6Address(low)}]",
        f"[{ipaddress.IPv6Address(0x2002 << 112 | low << 80)}]",
        f"[{ipaddress.IPv6Address(0x64FF9B << 96 | low)}]",
        f"[{ipaddress.IPv6Address(0x20010000 << 96 | low << 64)}]",
    ]


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(internal_ipv4(), st.sampled_from(["dec", "hex", "HEX", "oct"]), st.sampled_from(["", ".", "%2e"]))
def test_internal_ipv4_is_refused_in_every_spelling(address, style, suffix):
    for host in legacy_spellings(address, style):
        spelled = host + suffix
        assert socket.inet_aton(host) == address.packed  # the spelling does mean this address
        assert style_reference_problem(f"https://{spelled}/a.png"), spelled
        assert style_reference_problem(f"https://{spelled.replace('.', '%2e')}/a.png"), spelled
    for host in ipv6_forms(address):
        assert style_reference_problem(f"https://{host}/a.png"), host


@PROPERTY
@given(internal_ipv4())
def test_internal_ipv4_is_refused_through_the_sidecar(address):
    for host in [*legacy_spellings(address, "hex"), str(address), *ipv6_forms(address)[:2]]:
        assert "style_reference_images: [0] " in refusal(f"https://{host}/a.png")


@PROPERTY
@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=24))
def test_an_accepted_host_is_never_a_legacy_ipv4_spelling(host):
    if style_reference_problem(f"https://{host}/a.png") is not None:
        return
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return  # not an address to a resolver: a DNS name
    assert host == socket.inet_ntoa(packed)  # plain dotted-quad form only
    assert ipaddress.IPv4Address(packed).is_global


@PROPERTY
@given(st.text(max_size=60))
def test_any_reference_gets_an_answer_not_a_crash(reference):
    for candidate in (reference, f"https://{reference}/a.png", f"https://[{reference}]/"):
        problem = style_reference_problem(candidate)
        assert problem is None or (isinstance(problem, str) and problem)
