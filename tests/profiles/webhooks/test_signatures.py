import base64
import hashlib
import hmac

import pytest

from profiles.webhooks.signatures import SignatureError, verify_mindbody, verify_shopify, verify_standard, verify_stripe

BODY = b'{"id": "evt_1", "type": "customer.created"}'
NOW = 1_800_000_000


def stripe_sig(secret, t, body=BODY):
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_stripe_accepts_any_v1_against_any_active_secret():
    old, new = "whsec_old", "whsec_new"
    header = f"t={NOW},v1={stripe_sig('whsec_other', NOW)},v1={stripe_sig(old, NOW)}"
    verify_stripe(body=BODY, header=header, secrets=[new, old], now=NOW, tolerance=300)


@pytest.mark.parametrize("offset", [-301, 301])
def test_stripe_refuses_stale_and_future_timestamps(offset):
    t = NOW + offset
    with pytest.raises(SignatureError) as raised:
        verify_stripe(body=BODY, header=f"t={t},v1={stripe_sig('s', t)}", secrets=["s"], now=NOW, tolerance=300)
    assert raised.value.status == 400 and raised.value.code == "stale_timestamp"


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", f"t={NOW}", f"t={NOW},v1=deadbeef", f"v1={'0' * 64}"])
def test_stripe_refuses_bad_headers(header):
    with pytest.raises(SignatureError) as raised:
        verify_stripe(body=BODY, header=header, secrets=["s"], now=NOW, tolerance=300)
    assert raised.value.status == 401


def test_stripe_signature_covers_the_raw_body():
    header = f"t={NOW},v1={stripe_sig('s', NOW)}"
    with pytest.raises(SignatureError):
        verify_stripe(body=BODY + b" ", header=header, secrets=["s"], now=NOW, tolerance=300)


def test_shopify():
    digest = base64.b64encode(hmac.new(b"shpss_2", BODY, hashlib.sha256).digest()).decode()
    verify_shopify(body=BODY, header=digest, secrets=["shpss_1", "shpss_2"])
    with pytest.raises(SignatureError):
        verify_shopify(body=BODY, header=digest, secrets=["shpss_1"])
    with pytest.raises(SignatureError):
        verify_shopify(body=BODY, header="", secrets=["shpss_1"])


def test_mindbody():
    digest = base64.b64encode(hmac.new(b"key", BODY, hashlib.sha256).digest()).decode()
    verify_mindbody(body=BODY, header=f"sha256={digest}", secrets=["key"])
    for header in [digest, "sha256=", f"sha256={digest[:-2]}AA", ""]:
        with pytest.raises(SignatureError):
            verify_mindbody(body=BODY, header=header, secrets=["key"])


def test_standard_webhooks_with_several_signatures_and_rotation():
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    key = base64.b64decode(secret[6:])
    good = base64.b64encode(hmac.new(key, f"msg_1.{NOW}.".encode() + BODY, hashlib.sha256).digest()).decode()
    header = f"v1,{base64.b64encode(b'x' * 32).decode()} v1,{good}"
    verify_standard(
        body=BODY,
        message_id="msg_1",
        timestamp=str(NOW),
        header=header,
        secrets=["whsec_b2xk", secret],
        now=NOW,
        tolerance=300,
    )
    with pytest.raises(SignatureError):  # the id is signed too
        verify_standard(
            body=BODY, message_id="msg_2", timestamp=str(NOW), header=header, secrets=[secret], now=NOW, tolerance=300
        )
    with pytest.raises(SignatureError) as raised:
        verify_standard(
            body=BODY,
            message_id="msg_1",
            timestamp=str(NOW - 301),
            header=header,
            secrets=[secret],
            now=NOW,
            tolerance=300,
        )
    assert raised.value.status == 400
