"""Responders for `LocalDestination` that answer like the vendors' APIs, per-record errors included.

Each `*_responder(...)` returns a function `responder(received) -> Reply`; pass it to
`LocalDestination(responder)`. Credentials are checked only when given (e.g. `api_key="k"`), so
a test that does not care about auth can leave them out. The shapes follow the vendors'
documentation:

- Braze `/users/track`: 201 `{"message": "success", "attributes_processed", "errors": [{"type",
  "input_array": "attributes", "index"}]}`; 400 when no object was valid; `/users/delete`: 201
  `{"deleted", "message"}`.
- Salesforce sObject Collections upsert: 200 with one `{"id", "success", "errors", "created"}` per
  record in order; delete by external ID: 204, 404 `[{"errorCode": "NOT_FOUND", ...}]`; `/limits`.
- HubSpot batch upsert: 200 `{"status": "COMPLETE", "results"}` or 207 with `errors[].context.ids`;
  `gdpr-delete`: 204; contacts list.
- Twilio Messages: 201 Message resource, 4xx `{"code", "message", "more_info", "status"}`.
- Meta custom audience users: `{"audience_id", "session_id", "num_received", "num_invalid_entries",
  "invalid_entry_samples"}` or `{"error": {...}}`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

from activations.local_destination import Received, Reply

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def _bearer(received: Received) -> str | None:
    header = received.headers.get("authorization", "")
    return header[len("Bearer ") :] if header.startswith("Bearer ") else None


def _path(received: Received) -> str:
    return urlsplit(received.path).path


# -- Braze ------------------------------------------------------------------------------------------


def braze_responder(fail_external_ids=(), *, error_type="'email' must be a valid email address", api_key=None):
    """/users/track refuses the attribute objects whose external_id is in `fail_external_ids`."""
    failing = set(fail_external_ids)

    def respond(received: Received) -> Reply:
        token = _bearer(received)
        if token is None or (api_key is not None and token != api_key):
            return Reply(401, {"message": "Invalid API key: " + (token or "")})
        path, body = _path(received), received.json or {}
        if path == "/users/track":
            attributes = body.get("attributes") or []
            errors = [
                {"type": error_type, "input_array": "attributes", "index": index}
                for index, attribute in enumerate(attributes)
                if attribute.get("external_id") in failing
            ]
            errors += [
                {
                    "type": "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required",
                    "input_array": "attributes",
                    "index": index,
                }
                for index, attribute in enumerate(attributes)
                if not attribute.get("external_id")
            ]
            processed = len(attributes) - len({error["index"] for error in errors})
            if attributes and processed == 0:
                message = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
                return Reply(400, {"attributes_processed": 0, "message": message, "errors": errors})
            answer = {"message": "success", "attributes_processed": processed}
            if errors:
                answer["errors"] = errors
            return Reply(201, answer)
        if path == "/users/delete":
            ids = body.get("external_ids") or []
            if len(ids) > 50:
                return Reply(400, {"message": "'external_ids' must have no more than 50 items"})
            return Reply(201, {"deleted": len(ids), "message": "success"})
        return Reply(404, {"message": "Not found"})

    return respond


# -- Salesforce -------------------------------------------------------------------------------------


def salesforce_responder(fail_keys=(), *, missing_keys=(), access_token=None, error_code="INVALID_EMAIL_ADDRESS"):
    """Collections upsert refuses records whose external ID is in `fail_keys`; deleting a key in
    `missing_keys` answers 404 NOT_FOUND."""
    failing, missing = set(fail_keys), set(missing_keys)

    def respond(received: Received) -> Reply:
        token = _bearer(received)
        if token is None or (access_token is not None and token != access_token):
            return Reply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        path = _path(received)
        parts = path.strip("/").split("/")
        if received.method == "GET" and path.endswith("/limits"):
            return Reply(200, {"DailyApiRequests": {"Max": 15000, "Remaining": 14990}})
        if received.method == "PATCH" and len(parts) == 7 and parts[3:5] == ["composite", "sobjects"]:
            field = unquote(parts[6])
            records = (received.json or {}).get("records")
            if not isinstance(records, list) or len(records) > 200:
                return Reply(400, [{"message": "records: 1 to 200 records", "errorCode": "INVALID_FIELD"}])
            answer = []
            for record in records:
                if record.get(field) in failing:
                    answer.append(
                        {
                            "success": False,
                            "errors": [
                                {"statusCode": error_code, "message": "invalid email address", "fields": ["Email"]}
                            ],
                        }
                    )
                else:
                    sid = "003" + hashlib.sha256(str(record.get(field)).encode()).hexdigest()[:15].upper()
                    answer.append({"id": sid, "success": True, "errors": [], "created": True})
            return Reply(200, answer)
        if received.method == "DELETE" and len(parts) == 7 and parts[3] == "sobjects":
            if unquote(parts[6]) in missing:
                return Reply(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
            return Reply(204, b"")
        return Reply(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])

    return respond


# -- HubSpot ----------------------------------------------------------------------------------------


def hubspot_responder(fail_ids=(), *, missing_ids=(), access_token=None):
    """Batch upsert answers 207 naming the inputs whose id is in `fail_ids`; GDPR-deleting an id in
    `missing_ids` answers 404."""
    failing = {str(i).lower() for i in fail_ids}
    missing = {str(i).lower() for i in missing_ids}

    def respond(received: Received) -> Reply:
        token = _bearer(received)
        if token is None or (access_token is not None and token != access_token):
            return Reply(
                401,
                {
                    "status": "error",
                    "message": "Authentication credentials not found.",
                    "correlationId": str(uuid.uuid4()),
                    "category": "INVALID_AUTHENTICATION",
                },
            )
        path, body = _path(received), received.json or {}
        now = "2024-05-01T12:00:00.000Z"
        if path == "/crm/v3/objects/contacts/batch/upsert":
            inputs = body.get("inputs") or []
            if len(inputs) > 100:
                return Reply(
                    400, {"status": "error", "message": "Batch size cannot exceed 100", "category": "VALIDATION_ERROR"}
                )
            results, errors = [], []
            for position, item in enumerate(inputs):
                key = str(item.get("id", "")).lower()
                if key in failing:
                    errors.append(
                        {
                            "status": "error",
                            "category": "VALIDATION_ERROR",
                            "message": f"Property values were not valid for {item.get('id')}",
                            "context": {"ids": [item.get("id")]},
                        }
                    )
                    continue
                properties = {name: value for name, value in (item.get("properties") or {}).items()}
                properties[item.get("idProperty") or "hs_object_id"] = item.get("id")
                results.append(
                    {
                        "id": str(1000 + position),
                        "properties": properties,
                        "createdAt": now,
                        "updatedAt": now,
                        "archived": False,
                        "new": True,
                    }
                )
            answer = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
            if errors:
                answer.update(numErrors=len(errors), errors=errors)
                return Reply(207, answer)
            return Reply(200, answer)
        if path == "/crm/v3/objects/contacts/gdpr-delete":
            if str(body.get("objectId", "")).lower() in missing:
                return Reply(
                    404,
                    {"status": "error", "message": "resource not found", "category": "OBJECT_NOT_FOUND"},
                )
            return Reply(204, b"")
        if received.method == "GET" and path == "/crm/v3/objects/contacts":
            return Reply(200, {"results": [], "paging": {}})
        return Reply(404, {"status": "error", "message": "resource not found", "category": "OBJECT_NOT_FOUND"})

    return respond


# -- Twilio -----------------------------------------------------------------------------------------


def twilio_responder(fail_numbers=(), *, account_sid=None, auth_token=None, error_code=21211):
    """Messages to a number in `fail_numbers` are refused with `error_code` (21211: invalid To)."""
    failing = set(fail_numbers)

    def respond(received: Received) -> Reply:
        header = received.headers.get("authorization", "")
        user, _, password = (
            base64.b64decode(header[len("Basic ") :]).decode().partition(":")
            if header.startswith("Basic ")
            else ("", "", "")
        )
        if (
            not user
            or (account_sid is not None and user != account_sid)
            or (auth_token is not None and password != auth_token)
        ):
            return Reply(
                401,
                {
                    "code": 20003,
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },
            )
        path = _path(received)
        prefix = f"/2010-04-01/Accounts/{user}"
        if received.method == "GET" and path == f"{prefix}.json":
            return Reply(200, {"sid": user, "friendly_name": "Test account", "status": "active", "type": "Full"})
        if received.method == "POST" and path == f"{prefix}/Messages.json":
            form = {name: values[0] for name, values in parse_qs(received.body.decode()).items()}
            to = form.get("To", "")
            if not to:
                return Reply(
                    400,
                    {
                        "code": 21604,
                        "message": "A 'To' phone number is required.",
                        "more_info": "https://www.twilio.com/docs/errors/21604",
                        "status": 400,
                    },
                )
            if to in failing:
                return Reply(
                    400,
                    {
                        "code": error_code,
                        "message": f"The 'To' number {to} is not a valid phone number.",
                        "more_info": f"https://www.twilio.com/docs/errors/{error_code}",
                        "status": 400,
                    },
                )
            return Reply(
                201,
                {
                    "sid": "SM" + uuid.uuid4().hex,
                    "account_sid": user,
                    "to": to,
                    "from": form.get("From"),
                    "messaging_service_sid": form.get("MessagingServiceSid"),
                    "body": form.get("Body", ""),
                    "status": "queued" if form.get("MessagingServiceSid") is None else "accepted",
                    "num_segments": "1",
                    "error_code": None,
                    "error_message": None,
                },
            )
        return Reply(404, {"code": 20404, "message": "The requested resource was not found", "status": 404})

    return respond


# -- Meta -------------------------------------------------------------------------------------------


def meta_responder(*, error=None, access_token=None, status=400):
    """Add/remove answers with counts (entries that are not SHA-256 hex count as invalid, except
    EXTERN_ID and MADID); `error` (a dict like {"message", "type", "code"}) answers that error instead."""

    def respond(received: Received) -> Reply:
        token = _bearer(received) or parse_qs(urlsplit(received.path).query).get("access_token", [None])[0]
        if token is None or (access_token is not None and token != access_token):
            return Reply(
                400,
                {
                    "error": {
                        "message": "Invalid OAuth access token - Cannot parse access token",
                        "type": "OAuthException",
                        "code": 190,
                        "fbtrace_id": "AbCdEf",
                    }
                },
            )
        if error is not None:
            return Reply(status, {"error": {"type": "OAuthException", "fbtrace_id": "AbCdEf", **error}})
        parts = _path(received).strip("/").split("/")
        if received.method == "GET" and len(parts) == 2:
            return Reply(200, {"id": parts[1], "name": "CDP audience"})
        if received.method in ("POST", "DELETE") and len(parts) == 3 and parts[2] == "users":
            body = received.json or {}
            payload = body.get("payload") or {}
            schema, data = payload.get("schema") or [], payload.get("data") or []
            if isinstance(schema, str):
                schema, data = [schema], [[value] for value in data]
            if len(data) > 10_000:
                return Reply(
                    400, {"error": {"message": "(#100) Too many users", "type": "OAuthException", "code": 100}}
                )
            hashed = [index for index, key in enumerate(schema) if key not in ("EXTERN_ID", "MADID")]
            invalid = [
                row for row in data if any(row[i] and not SHA256_HEX.match(str(row[i])) for i in hashed if i < len(row))
            ]
            session = body.get("session") or {}
            return Reply(
                200,
                {
                    "audience_id": parts[1],
                    "session_id": str(session.get("session_id", "1")),
                    "num_received": len(data),
                    "num_invalid_entries": len(invalid),
                    "invalid_entry_samples": {},
                },
            )
        return Reply(400, {"error": {"message": "Unsupported request", "type": "GraphMethodException", "code": 100}})

    return respond
