"""The egress policy as pure decisions: hosts, literal IPs in every notation, resolved addresses."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayna.errors import ContractError
from relayna_studio import EgressDenied, EgressPolicy, normalize_base_url, parse_base_url

POLICY = EgressPolicy(allowed_hosts=(".svc.cluster.local", ".test", "exact.internal"))


@pytest.mark.parametrize(
    "host",
    ["a.svc.cluster.local", "x.y.test", "exact.internal", "EXACT.internal"],
)
def test_allowed_hosts(host: str) -> None:
    assert POLICY.check_host(host) is None


@pytest.mark.parametrize(
    "host",
    ["svc.cluster.local.evil.com", "test", "localhost", "sub.exact.internal", "evil.com", "xtest"],
)
def test_other_hosts_are_refused(host: str) -> None:
    with pytest.raises(EgressDenied) as info:
        POLICY.check_host(host)
    assert info.value.reason == "host_not_allowed"


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "017700000001", "0x7f.1", "1"],
)
def test_numeric_spellings_are_refused(host: str) -> None:
    with pytest.raises(EgressDenied) as info:
        EgressPolicy(allowed_hosts=(".test",), allowed_networks=("0.0.0.0/0",)).check_host(host)
    assert info.value.reason == "numeric_host"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "0.0.0.0", "::1", "::ffff:127.0.0.1", "169.254.169.254", "8.8.8.8"]
)
def test_literal_ips_need_an_allowed_network(host: str) -> None:
    with pytest.raises(EgressDenied) as info:
        POLICY.check_host(host)
    assert info.value.reason == "address_not_allowed"
    allowed = EgressPolicy(allowed_networks=(f"{host}/128" if ":" in host else f"{host}/32",))
    assert allowed.check_host(host) == ipaddress.ip_address(host)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:169.254.169.254",
        "::ffff:8.8.8.8",
        "64:ff9b::a9fe:a9fe",
        "::127.0.0.1",
        "2002:a9fe:a9fe::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    ],
)
def test_resolved_addresses_that_are_not_public_are_refused(address: str) -> None:
    with pytest.raises(EgressDenied):
        POLICY.check_address("svc.test", ipaddress.ip_address(address))


def test_public_addresses_pass_and_allowed_networks_override() -> None:
    POLICY.check_address("svc.test", ipaddress.ip_address("8.8.8.8"))
    POLICY.check_address("svc.test", ipaddress.ip_address("2606:4700::1111"))
    EgressPolicy(allowed_networks=("127.0.0.0/8",)).check_address(
        "svc.test", ipaddress.ip_address("127.0.0.2")
    )


@given(st.ip_addresses())
def test_no_non_global_address_ever_passes(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    try:
        POLICY.check_address("svc.test", address)
    except EgressDenied:
        return
    assert address.is_global
    assert not address.is_multicast
    if isinstance(address, ipaddress.IPv6Address):
        assert address.ipv4_mapped is None
        assert address.teredo is None
        assert address.sixtofour is None


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("  HTTP://Svc.Example.TEST:8080/api/  ", "http://svc.example.test:8080/api"),
        ("https://svc.test", "https://svc.test"),
        ("http://[::1]:81/", "http://[::1]:81"),
        ("http://[0:0::1]", "http://[::1]"),
    ],
)
def test_base_url_normalisation(raw: str, normal: str) -> None:
    assert normalize_base_url(raw) == normal


@pytest.mark.parametrize(
    "raw",
    [
        "ftp://svc.test",
        "http://user:pw@svc.test",
        "http://svc.test/?q=1",
        "http://svc.test/#frag",
        "http://svc.test\\@evil.test/",
        "http:///path",
        "http://svc.test:99999/",
        "http://svc.test:0/",
        "http://svc .test/",
        "http://své.test/",
        "http://svc.test/a\r\nb",
        "http://[fe80::1%25eth0]/",
        "",
        "   ",
        "x" * 3000,
    ],
)
def test_bad_base_urls_are_contract_errors(raw: str) -> None:
    with pytest.raises(ContractError):
        parse_base_url(raw)


@given(st.text(max_size=80))
def test_any_text_parses_or_is_a_contract_error(text: str) -> None:
    try:
        url = parse_base_url(text)
    except ContractError:
        return
    assert url.scheme in ("http", "https")
    assert url.host
