"""Webhook secrets, signatures and address rules (no database, no network)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from service.webhooks import (
    WebhookUrlRefused,
    address_problem,
    new_secret,
    parse_url,
    sign,
)


def test_secrets_are_32_random_bytes_in_base64() -> None:
    secrets = {new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


@given(message_id=st.text(min_size=1, max_size=40), body=st.binary(max_size=500))
def test_signatures_verify_with_the_standard_webhooks_library(message_id: str, body: bytes) -> None:
    body = body.decode("latin-1").encode()  # any text body: the library verifies str bodies
    secret = new_secret()
    timestamp = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }
    Webhook(secret).verify(body, headers, json_parse=False)
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers, json_parse=False)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("fd00::1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1%eth0", "a link-local address"),
        ("239.1.2.3", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("100.64.0.1", "not a public address"),  # carrier-grade NAT
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_rules(address: str, problem: str | None) -> None:
    assert address_problem(address) == problem


def test_url_form_rules() -> None:
    assert parse_url("https://hooks.example.com/x?a=1", allow_private=False).host == (
        "hooks.example.com"
    )
    with pytest.raises(WebhookUrlRefused) as refused:
        parse_url("http://hooks.example.com/x", allow_private=False)
    assert refused.value.details == {"rule": "https"}
    assert parse_url("http://127.0.0.1:9/x", allow_private=True).port == 9
