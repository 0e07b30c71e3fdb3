"""Finding 3 (SSRF): internal webhook targets are refused in every spelling, before any connection.

Nothing here opens a socket: literal addresses are judged without a lookup, names resolve from
the test hosts table (`tests.helpers.HostsResolver`), and the guarded transport's inner
transport is a recorder that would show any request the guard let through.
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from journeys.channels.netguard import GuardedTransport, NetGuard, TargetRefused, parse_ip
from journeys.config import Settings
from tests.helpers import HostsResolver

PUBLIC = "93.184.215.14"  # only ever a resolver answer: nothing here connects to it

FORBIDDEN = {
    "http://127.0.0.1/": "loopback",
    "http://2130706433/": "loopback",
    "http://0177.0.0.1/": "loopback",
    "http://0x7f.1/": "loopback",
    "http://0x7f000001/": "loopback",
    "http://127.1/": "loopback",
    "http://127.0.0.1./": "loopback",
    "http://%31%32%37.0.0.1/": "loopback",
    "http://[::1]:8233/": "loopback",
    "http://[::ffff:127.0.0.1]/": "loopback",
    "http://[::ffff:7f00:1]/": "loopback",
    "http://[2002:7f00:1::]/": "loopback",
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://[fe80::1%25eth0]/": "link-local",
    "http://[64:ff9b::a9fe:a9fe]/": "link-local",
    "http://10.0.0.1/": "private",
    "http://172.16.5.4/": "private",
    "http://192.168.1.1/": "private",
    "https://100.64.0.1/": "carrier-grade NAT",
    "http://224.0.0.1/": "multicast",
    "http://[ff02::1]/": "multicast",
    "http://0.0.0.0/": "unspecified",
    "http://0/": "unspecified",
    "http://[::]/": "unspecified",
    "http://[fd12:3456::1]/": "unique-local",
    "http://[::7f00:1]/": "reserved",
}


@pytest.mark.parametrize("url", sorted(FORBIDDEN))
async def test_every_spelling_of_an_internal_address_is_refused_without_a_lookup(
    url: str, hosts: HostsResolver
) -> None:
    asked = len(hosts.asked)
    problem = await NetGuard().url_problem(url)
    assert problem is not None and FORBIDDEN[url] in problem
    assert len(hosts.asked) == asked  # judged as a literal: no resolution, no packet


async def test_public_addresses_and_unresolvable_names_may_be_saved() -> None:
    guard = NetGuard()
    assert await guard.url_problem(f"https://{PUBLIC}/hook") is None
    assert await guard.url_problem("https://[2606:4700::1]/hook") is None
    # Not resolvable now: accepted at save, checked again (and refused) at request time.
    assert await guard.url_problem("https://nowhere.invalid/hook") is None
    with pytest.raises(TargetRefused, match="does not resolve"):
        await guard.pin("nowhere.invalid", 443)


async def test_a_name_is_judged_by_every_address_it_resolves_to(hosts: HostsResolver) -> None:
    hosts.table["mixed.guard.test"] = [PUBLIC, "10.1.2.3"]
    hosts.table["public.guard.test"] = [PUBLIC]
    guard = NetGuard()
    problem = await guard.url_problem("https://mixed.guard.test/hook")
    assert problem == "mixed.guard.test is 10.1.2.3, a private address"
    assert await guard.url_problem("https://public.guard.test/hook") is None
    problem = await guard.url_problem("http://localhost:8233/")
    assert problem is not None and "loopback" in problem


async def test_the_allowlist_admits_listed_names_addresses_and_ranges(
    hosts: HostsResolver,
) -> None:
    hosts.table["crm.internal.test"] = ["10.9.8.7"]
    hosts.table["other.internal.test"] = ["10.9.8.8"]
    by_name = NetGuard(["crm.internal.test"])
    assert await by_name.url_problem("http://crm.internal.test/hook") is None
    assert await by_name.url_problem("http://other.internal.test/hook") is not None
    by_range = NetGuard(["10.9.8.0/24", "::1"])
    assert await by_range.url_problem("http://other.internal.test/hook") is None
    assert await by_range.url_problem("http://[::1]/hook") is None
    assert await by_range.url_problem("http://10.9.9.1/hook") is not None
    assert await by_range.url_problem("http://127.0.0.1/hook") is not None


def test_legacy_ipv4_spellings_mean_what_inet_aton_reads() -> None:
    assert str(parse_ip("2130706433")) == "127.0.0.1"
    assert str(parse_ip("0x7f.0x0.0x0.0x1")) == "127.0.0.1"
    assert str(parse_ip("10.258")) == "10.0.1.2"
    assert str(parse_ip("0251.0376.0251.0376")) == "169.254.169.254"
    assert parse_ip("08.0.0.1") is None  # not octal, not decimal: a (failing) name
    assert parse_ip("256.0.0.1") is None
    assert parse_ip("crm.example.com") is None


class _Recorder(httpx.AsyncBaseTransport):
    """Stands where the network would be: records what the guard let through."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(204)


async def _call(guard: NetGuard, url: str) -> tuple[_Recorder, httpx.Response]:
    recorder = _Recorder()
    async with httpx.AsyncClient(transport=GuardedTransport(guard, recorder)) as http:
        return recorder, await http.post(url, content=b"{}")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/", "http://2130706433/", "http://[::1]/", "http://169.254.169.254/"]
)
async def test_the_transport_refuses_before_any_connection(url: str) -> None:
    recorder = _Recorder()
    async with httpx.AsyncClient(transport=GuardedTransport(NetGuard(), recorder)) as http:
        with pytest.raises(TargetRefused):
            await http.post(url, content=b"{}")
    assert recorder.requests == []


async def test_dns_rebinding_after_validation_is_refused_at_connect_time(
    hosts: HostsResolver,
) -> None:
    guard = NetGuard()
    hosts.table["rebind.guard.test"] = [PUBLIC]
    assert await guard.url_problem("https://rebind.guard.test/hook") is None
    hosts.table["rebind.guard.test"] = ["169.254.169.254"]
    recorder = _Recorder()
    async with httpx.AsyncClient(transport=GuardedTransport(guard, recorder)) as http:
        with pytest.raises(TargetRefused, match="link-local"):
            await http.post("https://rebind.guard.test/hook", content=b"{}")
    assert recorder.requests == []


async def test_the_request_goes_to_the_checked_address_with_the_original_host(
    hosts: HostsResolver,
) -> None:
    hosts.table["pinned.guard.test"] = [PUBLIC]
    recorder, response = await _call(NetGuard(), "https://pinned.guard.test:8443/hook")
    assert response.status_code == 204
    [sent] = recorder.requests
    assert sent.url.host == PUBLIC and sent.url.port == 8443
    assert sent.headers["Host"] == "pinned.guard.test:8443"
    assert sent.extensions["sni_hostname"] == "pinned.guard.test"  # TLS checks the name


def test_the_allowlist_setting_refuses_entries_that_mean_nothing() -> None:
    settings = Settings(webhook_allowed_hosts="crm.internal, 10.0.0.0/8, [::1]")
    assert settings.webhook_allowlist == ["crm.internal", "10.0.0.0/8", "[::1]"]
    for typo in ("10.0.0.0/33", "crm internal", "http://crm.internal/"):
        with pytest.raises(ValidationError, match="neither a host name"):
            Settings(webhook_allowed_hosts=typo)
