"""The client address every limit counts (accounts.limits.client_ip): the
proxy's header only from a peer listed in TRUSTED_PROXIES, the connection's
own address from anyone else (finding N5)."""

import os
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory

from accounts.limits import client_ip
from chatproject.settings import trusted_proxies

PASSWORD = "a-long-Passphrase-42"


def request_from(peer, **headers):
    return RequestFactory().get("/", REMOTE_ADDR=peer, **headers)


@pytest.fixture
def behind_proxy(settings):
    settings.CLIENT_IP_HEADER = "X-Real-IP"
    settings.TRUSTED_PROXIES = ["127.0.0.1", "::1", "10.8.0.0/16"]
    return settings


def test_the_header_is_read_from_a_trusted_peer(behind_proxy):
    assert client_ip(request_from("127.0.0.1", HTTP_X_REAL_IP="192.0.2.7")) == "192.0.2.7"
    assert client_ip(request_from("::1", HTTP_X_REAL_IP="192.0.2.7")) == "192.0.2.7"
    assert client_ip(request_from("10.8.3.4", HTTP_X_REAL_IP="2001:db8::1")) == "2001:db8::1"


def test_the_header_of_any_other_peer_is_ignored(behind_proxy):
    for forged in ("192.0.2.7", "127.0.0.1", "10.8.0.1"):
        request = request_from("203.0.113.5", HTTP_X_REAL_IP=forged)
        assert client_ip(request) == "203.0.113.5"
    assert client_ip(request_from("10.9.0.1", HTTP_X_REAL_IP="192.0.2.7")) == "10.9.0.1"


def test_an_ipv4_peer_seen_through_a_dual_stack_socket_counts_as_itself(behind_proxy):
    request = request_from("::ffff:127.0.0.1", HTTP_X_REAL_IP="192.0.2.7")
    assert client_ip(request) == "192.0.2.7"
    assert client_ip(request_from("::ffff:203.0.113.5")) == "203.0.113.5"


def test_a_trusted_peer_without_a_usable_header_counts_as_itself(behind_proxy):
    assert client_ip(request_from("127.0.0.1")) == "127.0.0.1"
    assert client_ip(request_from("127.0.0.1", HTTP_X_REAL_IP="not an address")) == "127.0.0.1"


def test_of_a_comma_list_the_last_entry_counts(behind_proxy):
    behind_proxy.CLIENT_IP_HEADER = "X-Forwarded-For"
    request = request_from("127.0.0.1", HTTP_X_FORWARDED_FOR="1.1.1.1, 192.0.2.9")
    assert client_ip(request) == "192.0.2.9"


def test_without_a_header_setting_the_peer_counts(settings):
    settings.CLIENT_IP_HEADER = ""
    assert client_ip(request_from("127.0.0.1", HTTP_X_REAL_IP="192.0.2.7")) == "127.0.0.1"


def test_no_peer_address_at_all_is_none(behind_proxy):
    request = request_from("127.0.0.1")
    del request.META["REMOTE_ADDR"]
    assert client_ip(request) is None


def test_the_setting_takes_addresses_and_networks_and_refuses_anything_else():
    assert trusted_proxies(["127.0.0.1", "::1", "10.0.0.0/8", " fd00::/8 ", ""]) == [
        "127.0.0.1",
        "::1",
        "10.0.0.0/8",
        "fd00::/8",
    ]
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        trusted_proxies(["127.0.0.1", "proxy.example.com"])


# --- Through HTTP: what the finding did --------------------------------------------------


@pytest.mark.django_db
def test_a_peer_reaching_the_server_directly_cannot_pick_its_address_for_signups(behind_proxy):
    behind_proxy.SIGNUP_RATE_LIMIT = "3/h"
    passed = 0
    for n in range(10):
        client = Client(REMOTE_ADDR="203.0.113.5", HTTP_X_REAL_IP=f"192.0.2.{n}")
        response = client.post(
            "/accounts/signup/",
            {"username": f"sock{n}", "password1": PASSWORD, "password2": PASSWORD},
        )
        passed += response.status_code == 303
    assert passed == 3
    assert get_user_model().objects.count() == 3


@pytest.mark.django_db
def test_a_peer_reaching_the_server_directly_cannot_spread_login_failures(behind_proxy, make_user):
    make_user("victim")
    for n in range(5):
        Client(REMOTE_ADDR="203.0.113.5", HTTP_X_REAL_IP=f"192.0.2.{n}").post(
            "/accounts/login/", {"username": "victim", "password": "wrong"}
        )
    again = Client(REMOTE_ADDR="203.0.113.5", HTTP_X_REAL_IP="192.0.2.200")
    response = again.post("/accounts/login/", {"username": "victim", "password": PASSWORD})
    assert response.status_code == 429


def test_a_bad_trusted_proxies_value_stops_the_settings():
    result = subprocess.run(
        [sys.executable, "-c", "import chatproject.settings"],
        env={**os.environ, "DEBUG": "1", "TRUSTED_PROXIES": "127.0.0.1,nonsense"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "TRUSTED_PROXIES" in result.stderr
