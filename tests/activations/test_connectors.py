"""Each vendor connector against a local server answering like the vendor: the exact requests, batch
splitting at the vendor's limit, and one result per record with per-record errors kept apart."""

import base64
import csv
import hashlib
import json
from urllib.parse import parse_qs, unquote

import httpx
import pytest

from activations import domain
from activations.connectors import Outbound, connector_classes, connector_for
from activations.local_destination import LocalDestination, Reply
from activations.models import Destination
from tests.activations.vendors import (
    braze_responder,
    hubspot_responder,
    meta_responder,
    salesforce_responder,
    twilio_responder,
)

pytestmark = pytest.mark.django_db

EMAIL_FIELDS = [
    {"name": "email", "source": "identifier:email"},
    {"name": "first_name", "source": "trait:first_name"},
    {"name": "plan", "source": "trait:plan"},
]


def make_destination(kind, url="", *, settings=None, secrets=None, fields=None, key="email", operations=None, **extra):
    slug = extra.pop("slug", f"{kind.replace('_', '-')}-{Destination.objects.count() + 1}")
    return Destination.objects.create(
        name=slug,
        slug=slug,
        kind=kind,
        base_url=url,
        settings=settings or {},
        secrets=json.dumps(secrets or {}),
        fields=fields or EMAIL_FIELDS,
        idempotency_key=key,
        operations=operations or ["upsert"],
        pii_mode=extra.pop("pii_mode", domain.CLEARTEXT),
        **extra,
    )


def outbound(count, operation="upsert", *, start=1, audience="vip", fields=None, key=None):
    records = []
    for n in range(start, start + count):
        values = {"email": f"user{n}@example.com", "first_name": f"User{n}", "plan": "pro"}
        records.append(
            Outbound(
                id=n,
                operation=operation,
                key=key(n) if key else values["email"],
                fields=values if fields is None else fields(n),
                idempotency_key=f"{operation}-{n}-v1",
                audience=audience,
            )
        )
    return records


def send(connector, requests):
    """Deliver each request for real and parse it: the results of all of them, in order."""
    results = []
    with httpx.Client() as client:
        for request in requests:
            response = connector.deliver(client, request, 5.0)
            parsed = connector.parse(request, response)
            assert sorted(r.id for r in parsed) == sorted(request.record_ids), "one result per record"
            results += parsed
    return results


def by_id(results):
    return {result.id: result for result in results}


# -- registry ---------------------------------------------------------------------------------------


def test_registry_has_every_vendor_with_a_runbook_line():
    classes = connector_classes()
    for kind in ("braze", "salesforce", "hubspot", "twilio", "meta_audience", "csv_export"):
        cls = classes[kind]
        assert cls.kind == kind
        assert cls.deletion.strip(), f"{kind} must say how a delete-person is handled"
        assert cls.max_batch_size >= 1 and cls.default_rate_limit > 0
        assert cls.operations


# -- Braze ------------------------------------------------------------------------------------------


def test_braze_upsert_splits_at_75_and_fails_only_the_refused_object():
    with LocalDestination(braze_responder({"user3@example.com"}, api_key="braze-key")) as server:
        destination = make_destination(
            "braze", server.url, secrets={"api_key": "braze-key"}, batch_size=500, operations=["upsert", "delete"]
        )
        connector = connector_for(destination)
        requests = connector.prepare("upsert", outbound(80))
        assert [len(r.record_ids) for r in requests] == [75, 5]
        results = by_id(send(connector, requests))

    first = server.requests[0]
    assert (first.method, first.path) == ("POST", "/users/track")
    assert first.headers["authorization"] == "Bearer braze-key"
    attributes = first.json["attributes"]
    assert len(attributes) == 75
    assert attributes[0] == {
        "external_id": "user1@example.com",
        "email": "user1@example.com",
        "first_name": "User1",
        "plan": "pro",
        "cdp_audiences": {"add": ["vip"]},
    }
    assert len(results) == 80
    assert not results[3].ok and "valid email" in results[3].message and results[3].status_code == 201
    assert all(results[n].ok for n in results if n != 3)
    assert requests[0].display()["headers"]["authorization"] == "••••"


def test_braze_update_and_remove_shapes():
    with LocalDestination(braze_responder()) as server:
        destination = make_destination(
            "braze",
            server.url,
            secrets={"api_key": "k"},
            settings={"audience_attribute": "segments"},
            operations=["update", "remove"],
        )
        connector = connector_for(destination)
        update = connector.prepare("update", outbound(1))[0]
        remove = connector.prepare("remove", outbound(1, "remove", fields=lambda n: {}))[0]
        results = send(connector, [update, remove])

    assert update.json["attributes"][0]["_update_existing_only"] is True
    assert update.json["attributes"][0]["segments"] == {"add": ["vip"]}
    # Remove touches only the audience attribute, and never creates a profile.
    assert remove.json["attributes"] == [
        {"external_id": "user1@example.com", "segments": {"remove": ["vip"]}, "_update_existing_only": True}
    ]
    assert [r.ok for r in results] == [True, True]
    assert [r.path for r in server.requests] == ["/users/track", "/users/track"]


def test_braze_delete_splits_at_50():
    with LocalDestination(braze_responder()) as server:
        destination = make_destination(
            "braze", server.url, secrets={"api_key": "k"}, batch_size=75, operations=["delete"]
        )
        connector = connector_for(destination)
        requests = connector.prepare("delete", outbound(120, "delete", fields=lambda n: {}))
        results = send(connector, requests)

    assert [len(r.json["external_ids"]) for r in server.requests] == [50, 50, 20]
    assert {r.path for r in server.requests} == {"/users/delete"}
    assert server.requests[0].json["external_ids"][:2] == ["user1@example.com", "user2@example.com"]
    assert len(results) == 120 and all(r.ok for r in results)


def test_braze_fatal_400_fails_the_whole_batch_and_all_refused_fails_all():
    fatal = LocalDestination(lambda received: Reply(400, {"message": "Invalid JSON in request body"}))
    with fatal as server:
        connector = connector_for(make_destination("braze", server.url, secrets={"api_key": "k"}))
        results = send(connector, connector.prepare("upsert", outbound(3)))
    assert [r.ok for r in results] == [False, False, False]
    assert "Invalid JSON" in results[0].message

    everyone = {f"user{n}@example.com" for n in (1, 2)}
    with LocalDestination(braze_responder(everyone)) as server:
        connector = connector_for(make_destination("braze", server.url, secrets={"api_key": "k"}))
        results = send(connector, connector.prepare("upsert", outbound(2)))
    assert [(r.ok, r.status_code) for r in results] == [(False, 400), (False, 400)]


def test_braze_connection_test():
    with LocalDestination(braze_responder(api_key="right")) as server:
        good = connector_for(make_destination("braze", server.url, secrets={"api_key": "right"}))
        bad = connector_for(make_destination("braze", server.url, secrets={"api_key": "wrong"}))
        with httpx.Client() as client:
            ok = good.deliver(client, good.test_request(), 5.0)
            refused = bad.deliver(client, bad.test_request(), 5.0)
    assert ok.status_code == 201 and refused.status_code == 401
    attribute = server.requests[0].json["attributes"][0]
    assert attribute["_update_existing_only"] is True and set(attribute) == {"external_id", "_update_existing_only"}
    assert good.check_configuration() == []
    missing = connector_for(make_destination("braze", secrets={}))
    assert missing.base_url == "https://rest.iad-01.braze.com"
    assert any("api_key" in problem for problem in missing.check_configuration())


# -- Salesforce -------------------------------------------------------------------------------------

SF_SETTINGS = {"external_id_field": "CDP_Email__c"}


def test_salesforce_upsert_collections_split_at_200_with_per_record_errors():
    with LocalDestination(salesforce_responder({"user7@example.com"}, access_token="sf-token")) as server:
        destination = make_destination(
            "salesforce", server.url, settings=SF_SETTINGS, secrets={"access_token": "sf-token"}, batch_size=1000
        )
        connector = connector_for(destination)
        requests = connector.prepare("upsert", outbound(250))
        assert [len(r.record_ids) for r in requests] == [200, 50]
        results = by_id(send(connector, requests))

    first = server.requests[0]
    assert first.method == "PATCH"
    assert first.path == "/services/data/v60.0/composite/sobjects/Contact/CDP_Email__c"
    assert first.headers["authorization"] == "Bearer sf-token"
    assert first.json["allOrNone"] is False
    assert first.json["records"][0] == {
        "attributes": {"type": "Contact"},
        "email": "user1@example.com",
        "first_name": "User1",
        "plan": "pro",
        "CDP_Email__c": "user1@example.com",
    }
    assert len(server.requests[1].json["records"]) == 50
    assert len(results) == 250
    assert not results[7].ok and results[7].message.startswith("INVALID_EMAIL_ADDRESS") and not results[7].retry
    assert all(results[n].ok for n in results if n != 7)
    assert results[1].message.startswith("created 003")


def test_salesforce_transient_row_lock_is_retried():
    def locked(received):
        records = received.json["records"]
        answer = [{"id": "003A", "success": True, "errors": [], "created": False}] * len(records)
        answer[1] = {
            "success": False,
            "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}],
        }
        return Reply(200, answer)

    with LocalDestination(locked) as server:
        destination = make_destination(
            "salesforce",
            server.url,
            settings={**SF_SETTINGS, "sobject": "Lead", "api_version": "v61.0"},
            secrets={"access_token": "t"},
        )
        connector = connector_for(destination)
        results = send(connector, connector.prepare("upsert", outbound(3)))
    assert server.requests[0].path == "/services/data/v61.0/composite/sobjects/Lead/CDP_Email__c"
    assert [(r.ok, r.retry) for r in results] == [(True, False), (False, True), (True, False)]
    assert results[0].message.startswith("updated")


def test_salesforce_delete_by_external_id_one_per_record_and_404_counts_as_done():
    with LocalDestination(salesforce_responder(missing_keys={"user2@example.com"})) as server:
        destination = make_destination(
            "salesforce", server.url, settings=SF_SETTINGS, secrets={"access_token": "t"}, operations=["delete"]
        )
        connector = connector_for(destination)
        requests = connector.prepare(
            "delete", outbound(2, "delete", key=lambda n: f"user{n}@example.com", fields=lambda n: {})
        )
        results = send(connector, requests)

    assert [(r.method, unquote(r.path)) for r in server.requests] == [
        ("DELETE", "/services/data/v60.0/sobjects/Contact/CDP_Email__c/user1@example.com"),
        ("DELETE", "/services/data/v60.0/sobjects/Contact/CDP_Email__c/user2@example.com"),
    ]
    assert "%40" in server.requests[0].path  # the key is URL-encoded in the path
    assert [(r.ok, r.status_code) for r in results] == [(True, 204), (True, 404)]
    assert "already" in results[1].message


def test_salesforce_rejected_token_fails_all_and_configuration_is_checked():
    with LocalDestination(salesforce_responder(access_token="right")) as server:
        connector = connector_for(
            make_destination("salesforce", server.url, settings=SF_SETTINGS, secrets={"access_token": "wrong"})
        )
        results = send(connector, connector.prepare("upsert", outbound(2)))
        with httpx.Client() as client:
            test = connector.deliver(client, connector.test_request(), 5.0)
        good = connector_for(
            make_destination("salesforce", server.url, settings=SF_SETTINGS, secrets={"access_token": "right"})
        )
        with httpx.Client() as client:
            passed = good.deliver(client, good.test_request(), 5.0)
    assert [r.ok for r in results] == [False, False]
    assert "INVALID_SESSION_ID" in results[0].message
    assert test.status_code == 401 and passed.status_code == 200
    assert server.requests[-1].method == "GET" and server.requests[-1].path == "/services/data/v60.0/limits"

    bare = connector_for(make_destination("salesforce", settings={"api_version": "40.0"}))
    problems = " | ".join(bare.check_configuration())
    assert "external_id_field" in problems and "access_token" in problems
    assert "instance URL" in problems and "46.0" in problems
    with pytest.raises(domain.ContractViolation):
        bare.prepare("update", outbound(1))


# -- HubSpot ----------------------------------------------------------------------------------------


def test_hubspot_batch_upsert_splits_at_100_and_207_fails_only_named_ids():
    with LocalDestination(hubspot_responder({"USER42@example.com"}, access_token="pat-1")) as server:
        destination = make_destination("hubspot", server.url, secrets={"access_token": "pat-1"}, batch_size=500)
        connector = connector_for(destination)
        requests = connector.prepare(
            "upsert", outbound(150, fields=lambda n: {"email": f"user{n}@example.com", "vip": True})
        )
        assert [len(r.record_ids) for r in requests] == [100, 50]
        results = by_id(send(connector, requests))

    first = server.requests[0]
    assert (first.method, first.path) == ("POST", "/crm/v3/objects/contacts/batch/upsert")
    assert first.headers["authorization"] == "Bearer pat-1"
    assert first.json["inputs"][0] == {
        "idProperty": "email",
        "id": "user1@example.com",
        "properties": {"email": "user1@example.com", "vip": "true"},
    }
    assert len(results) == 150
    assert not results[42].ok and results[42].status_code == 207 and "VALIDATION_ERROR" in results[42].message
    assert all(results[n].ok for n in results if n != 42)


def test_hubspot_error_naming_no_input_fails_those_without_a_result():
    def partial(received):
        inputs = received.json["inputs"]
        return Reply(
            207,
            {
                "status": "COMPLETE",
                "results": [{"id": "1", "properties": {"email": inputs[0]["id"]}}],
                "numErrors": 1,
                "errors": [{"status": "error", "category": "INTERNAL_ERROR", "message": "boom", "context": {}}],
            },
        )

    with LocalDestination(partial) as server:
        connector = connector_for(make_destination("hubspot", server.url, secrets={"access_token": "t"}))
        results = send(connector, connector.prepare("upsert", outbound(2)))
    assert [r.ok for r in results] == [True, False] and "boom" in results[1].message


def test_hubspot_gdpr_delete_one_per_record():
    with LocalDestination(hubspot_responder(missing_ids={"user2@example.com"})) as server:
        destination = make_destination(
            "hubspot", server.url, secrets={"access_token": "t"}, operations=["upsert", "delete"]
        )
        connector = connector_for(destination)
        results = send(connector, connector.prepare("delete", outbound(2, "delete", fields=lambda n: {})))

    assert [(r.method, r.path, r.json) for r in server.requests] == [
        ("POST", "/crm/v3/objects/contacts/gdpr-delete", {"objectId": "user1@example.com", "idProperty": "email"}),
        ("POST", "/crm/v3/objects/contacts/gdpr-delete", {"objectId": "user2@example.com", "idProperty": "email"}),
    ]
    assert [(r.ok, r.status_code) for r in results] == [(True, 204), (True, 404)]
    assert connector.check_configuration() == []
    custom = connector_for(
        make_destination(
            "hubspot", settings={"id_property": "cdp_id"}, secrets={"access_token": "t"}, operations=["delete"]
        )
    )
    assert any("GDPR delete" in problem for problem in custom.check_configuration())


def test_hubspot_connection_test_and_whole_batch_error():
    with LocalDestination(hubspot_responder(access_token="right")) as server:
        good = connector_for(make_destination("hubspot", server.url, secrets={"access_token": "right"}))
        bad = connector_for(make_destination("hubspot", server.url, secrets={"access_token": "wrong"}))
        with httpx.Client() as client:
            assert good.deliver(client, good.test_request(), 5.0).status_code == 200
            assert bad.deliver(client, bad.test_request(), 5.0).status_code == 401
        results = send(bad, bad.prepare("upsert", outbound(2)))
    assert (server.requests[0].method, server.requests[0].path) == ("GET", "/crm/v3/objects/contacts?limit=1")
    assert [r.ok for r in results] == [False, False] and "INVALID_AUTHENTICATION" in results[0].message
    assert connector_for(make_destination("hubspot")).base_url == "https://api.hubapi.com"


# -- Twilio -----------------------------------------------------------------------------------------

TWILIO_FIELDS = [{"name": "phone", "source": "identifier:phone"}]


def sms(n, to):
    return Outbound(
        id=n,
        operation=domain.MESSAGE,
        key=to,
        fields={"To": to, "Body": f"Hi {n}, your order shipped"},
        idempotency_key=f"trigger-7:profile-{n}:entry",
        audience="order-shipped",
    )


def test_twilio_sends_form_encoded_with_idempotency_header_and_reads_errors():
    sid = "AC" + "1" * 32
    with LocalDestination(twilio_responder({"+15005550001"}, account_sid=sid, auth_token="tw-secret")) as server:
        destination = make_destination(
            "twilio",
            server.url,
            settings={"account_sid": sid, "from_number": "+15005550006"},
            secrets={"auth_token": "tw-secret"},
            fields=TWILIO_FIELDS,
            key="phone",
            operations=["message"],
        )
        connector = connector_for(destination)
        requests = connector.prepare("message", [sms(1, "+14155550123"), sms(2, "+15005550001")])
        assert len(requests) == 2
        results = send(connector, requests)

    first = server.requests[0]
    assert (first.method, first.path) == ("POST", f"/2010-04-01/Accounts/{sid}/Messages.json")
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    assert first.headers["authorization"] == "Basic " + base64.b64encode(f"{sid}:tw-secret".encode()).decode()
    assert first.headers["i-twilio-idempotency-token"] == "trigger-7:profile-1:entry"
    assert parse_qs(first.body.decode()) == {
        "To": ["+14155550123"],
        "Body": ["Hi 1, your order shipped"],
        "From": ["+15005550006"],
    }
    assert results[0].ok and results[0].status_code == 201 and results[0].message.startswith("sid SM")
    assert not results[1].ok and results[1].status_code == 400 and "21211" in results[1].message
    assert requests[0].display()["headers"]["authorization"] == "••••"


def test_twilio_messaging_service_connection_test_and_configuration():
    sid = "AC" + "2" * 32
    with LocalDestination(twilio_responder(account_sid=sid, auth_token="right")) as server:
        destination = make_destination(
            "twilio",
            server.url,
            settings={"account_sid": sid, "messaging_service_sid": "MG" + "3" * 32},
            secrets={"auth_token": "right"},
            fields=TWILIO_FIELDS,
            key="phone",
            operations=["message"],
        )
        connector = connector_for(destination)
        results = send(connector, connector.prepare("message", [sms(1, "+14155550123")]))
        with httpx.Client() as client:
            assert connector.deliver(client, connector.test_request(), 5.0).status_code == 200
    assert results[0].ok
    assert parse_qs(server.requests[0].body.decode())["MessagingServiceSid"] == ["MG" + "3" * 32]
    assert (server.requests[1].method, server.requests[1].path) == ("GET", f"/2010-04-01/Accounts/{sid}.json")
    assert connector.check_configuration() == []

    bare = connector_for(make_destination("twilio", fields=TWILIO_FIELDS, key="phone", pii_mode=domain.HASHED))
    problems = " | ".join(bare.check_configuration())
    assert "account_sid" in problems and "auth_token" in problems and "from_number" in problems
    assert "cleartext" in problems
    with pytest.raises(domain.ContractViolation):
        connector.prepare("upsert", [sms(1, "+14155550123")])


# -- Meta -------------------------------------------------------------------------------------------

META_FIELDS = [
    {"name": "email", "source": "identifier:email"},
    {"name": "phone", "source": "identifier:phone"},
    {"name": "fn", "source": "trait:first_name"},
]


def meta_destination(url="", **extra):
    return make_destination(
        "meta_audience",
        url,
        settings={"audience_id": "23850000000000001"},
        secrets={"access_token": "meta-token"},
        fields=META_FIELDS,
        operations=["upsert", "remove"],
        **{"pii_mode": domain.HASHED, **extra},
    )


def hashed_record(n, destination, email, phone, first_name, operation="upsert"):
    contract = {field.name: field for field in destination.contract}
    raw = {"email": email, "phone": phone, "fn": first_name}
    fields = {name: domain.sha256_normalised(contract[name], value) for name, value in raw.items()}
    return Outbound(
        id=n,
        operation=operation,
        key=fields["email"],
        fields=fields,
        idempotency_key=f"{operation}-{n}",
        audience="vip",
    )


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_meta_adds_normalised_hashes_with_multi_key_schema(settings):
    settings.PHONE_DEFAULT_REGION = "US"
    with LocalDestination(meta_responder(access_token="meta-token")) as server:
        destination = meta_destination(server.url)
        connector = connector_for(destination)
        record = hashed_record(1, destination, "  Alice.Smith@Example.COM ", "(415) 555-0123", " Alice ")
        requests = connector.prepare("upsert", [record, hashed_record(2, destination, "bob@example.com", None, "Bob")])
        results = send(connector, requests)

    received = server.requests[0]
    assert (received.method, received.path) == ("POST", "/v19.0/23850000000000001/users")
    assert received.headers["authorization"] == "Bearer meta-token"
    payload = received.json["payload"]
    assert payload["schema"] == ["EMAIL", "PHONE", "FN"]
    assert payload["data"][0] == [sha("alice.smith@example.com"), sha("14155550123"), sha("alice")]
    assert payload["data"][1] == [sha("bob@example.com"), "", sha("bob")]
    assert received.json["session"]["batch_seq"] == 1 and received.json["session"]["last_batch_flag"] is True
    assert [r.ok for r in results] == [True, True]
    assert results[0].message == "received 2, invalid 0"
    assert connector.check_configuration() == []


def test_meta_refuses_cleartext_and_sends_nothing():
    with LocalDestination(meta_responder()) as server:
        destination = meta_destination(server.url)
        connector = connector_for(destination)
        good = hashed_record(1, destination, "a@example.com", "+14155550123", "Ann")
        leaky = Outbound(
            id=2,
            operation="upsert",
            key=sha("b@example.com"),
            fields={"email": "b@example.com", "phone": None, "fn": None},
            idempotency_key="upsert-2",
        )
        with pytest.raises(domain.ContractViolation) as refused:
            connector.prepare("upsert", [good, leaky])
        upper = Outbound(
            id=3, operation="upsert", key="X", fields={"email": sha("c@example.com").upper()}, idempotency_key="u3"
        )
        with pytest.raises(domain.ContractViolation):
            connector.prepare("upsert", [upper])
    assert "b@example.com" not in str(refused.value)  # the refusal does not leak the value either
    assert server.requests == []
    cleartext = connector_for(meta_destination(slug="meta-cleartext", pii_mode=domain.CLEARTEXT))
    assert any("hashed" in problem for problem in cleartext.check_configuration())
    with pytest.raises(domain.ContractViolation):
        cleartext.prepare("upsert", [good])


def test_meta_remove_deletes_by_key_and_splits_at_10000():
    with LocalDestination(meta_responder()) as server:
        destination = meta_destination(server.url, batch_size=20_000)
        connector = connector_for(destination)
        records = [
            Outbound(
                id=n, operation="remove", key=sha(f"user{n}@example.com"), fields={}, idempotency_key=f"remove-{n}"
            )
            for n in range(1, 10_003)
        ]
        requests = connector.prepare("remove", records)
        assert [len(r.record_ids) for r in requests] == [10_000, 2]
        results = send(connector, requests)

    assert [r.method for r in server.requests] == ["DELETE", "DELETE"]
    assert server.requests[1].path == "/v19.0/23850000000000001/users"
    assert server.requests[1].json["payload"] == {
        "schema": ["EMAIL"],
        "data": [[sha("user10001@example.com")], [sha("user10002@example.com")]],
    }
    assert len(results) == 10_002 and all(r.ok for r in results)


def test_meta_error_fails_every_record_and_transient_errors_are_retried():
    error = {"message": "(#2650) Invalid audience", "type": "OAuthException", "code": 2650}
    with LocalDestination(meta_responder(error=error)) as server:
        destination = meta_destination(server.url)
        connector = connector_for(destination)
        records = [hashed_record(n, destination, f"u{n}@example.com", None, None) for n in (1, 2)]
        results = send(connector, connector.prepare("upsert", records))
    assert [(r.ok, r.retry) for r in results] == [(False, False), (False, False)]
    assert "Invalid audience" in results[0].message

    throttled = {"message": "User request limit reached", "type": "OAuthException", "code": 17, "is_transient": True}
    with LocalDestination(meta_responder(error=throttled)) as server:
        connector = connector_for(meta_destination(server.url, slug="meta-throttled"))
        results = send(connector, connector.prepare("upsert", records[:1]))
    assert results[0].retry and not results[0].ok


def test_meta_connection_test_and_unmapped_fields():
    with LocalDestination(meta_responder(access_token="meta-token")) as server:
        connector = connector_for(meta_destination(server.url))
        with httpx.Client() as client:
            response = connector.deliver(client, connector.test_request(), 5.0)
    assert response.status_code == 200 and response.json()["name"] == "CDP audience"
    assert (server.requests[0].method, server.requests[0].path) == ("GET", "/v19.0/23850000000000001?fields=id,name")
    odd = make_destination(
        "meta_audience",
        settings={"audience_id": "1"},
        secrets={"access_token": "t"},
        fields=[*META_FIELDS, {"name": "ltv", "source": "profile:lifetime_revenue"}],
        pii_mode=domain.HASHED,
    )
    assert any("'ltv'" in problem for problem in connector_for(odd).check_configuration())


# -- CSV export -------------------------------------------------------------------------------------


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_csv_appends_rows_and_a_resend_adds_nothing(tmp_path):
    destination = make_destination(
        "csv_export", settings={"directory": str(tmp_path)}, operations=["upsert", "delete"], slug="crm-file"
    )
    connector = connector_for(destination)
    first = connector.prepare("upsert", outbound(3))
    assert len(first) == 1 and first[0].method == "APPEND"
    results = send(connector, first)
    path = tmp_path / "crm-file-vip.csv"
    assert [r.ok for r in results] == [True, True, True]
    rows = read_rows(path)
    assert rows[0] == ["idempotency_key", "operation", "key", "email", "first_name", "plan"]
    assert rows[1] == ["upsert-1-v1", "upsert", "user1@example.com", "user1@example.com", "User1", "pro"]
    assert len(rows) == 4

    # The same operations again (a retry after a lost answer) plus one new: only the new one is written.
    again = send(connector, connector.prepare("upsert", outbound(4)))
    assert all(r.ok for r in again)
    assert [r.message.startswith("already in") for r in again] == [True, True, True, False]
    assert [row[0] for row in read_rows(path)[1:]] == ["upsert-1-v1", "upsert-2-v1", "upsert-3-v1", "upsert-4-v1"]

    send(connector, connector.prepare("delete", outbound(1, "delete", start=2, fields=lambda n: {})))
    assert read_rows(path)[-1] == ["delete-2-v1", "delete", "user2@example.com", "", "", ""]


def test_csv_rows_written_before_a_crash_are_not_written_twice(tmp_path):
    connector = connector_for(make_destination("csv_export", settings={"directory": str(tmp_path)}, slug="exp"))
    send(connector, connector.prepare("upsert", outbound(2, audience="")))
    path = tmp_path / "exp.csv"
    # The CSV write landed but the sidecar never heard of it (it is lost entirely here).
    (tmp_path / "exp.csv.keys").unlink()
    results = send(connector, connector.prepare("upsert", outbound(3, audience="")))
    assert [r.message.startswith("already in") for r in results] == [True, True, False]
    assert [row[0] for row in read_rows(path)] == ["idempotency_key", "upsert-1-v1", "upsert-2-v1", "upsert-3-v1"]


def test_csv_connection_test_checks_the_directory(tmp_path):
    target = tmp_path / "exports" / "nested"
    connector = connector_for(make_destination("csv_export", settings={"directory": str(target)}))
    with httpx.Client() as client:
        response = connector.deliver(client, connector.test_request(), 5.0)
        assert response.status_code == 200 and response.json()["writable"] is True
        assert target.is_dir() and list(target.iterdir()) == []

        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        broken = connector_for(make_destination("csv_export", settings={"directory": str(blocker / "sub")}))
        failed = broken.deliver(client, broken.test_request(), 5.0)
        assert not broken.is_success(failed)
        results = send(broken, broken.prepare("upsert", outbound(1)))
    assert not results[0].ok and "error" in results[0].message


def test_csv_default_directory_is_under_base_dir(settings):
    connector = connector_for(make_destination("csv_export", slug="daily"))
    assert connector.path_for("vip") == settings.VAR_DIR / "exports" / "daily-vip.csv"
    assert connector.test_request().method == "CHECK"
