"""Personal data on staff pages and in the API: masked by default, revealed per profile and logged.

Everyone sees masked values (`a***@e***.com`, `+*********77`, `A. L.`). People whose role may see
personal data (REVEAL_PERMISSION) get a Reveal button per profile, and the API answers them in
cleartext with `?reveal=1`; every reveal writes a `pii.reveal` audit entry naming the fields, never
the values. Masking keeps enough to recognise a value (first letters, the top-level domain, the last
two digits of a phone) and leaves hashed values (SHA-256 hex) alone: they are not cleartext.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote_plus

from cdp_site.audit import audit_record

# No migration may add a permission here, so an existing one stands for "may see personal data":
# guest services, privacy officers and integration engineers hold it (they already read identifiers
# in their work); marketers do not.
REVEAL_PERMISSION = "identity.view_identifier"

MASK = "***"
# Keys whose values are personal data, in traits, event properties and payloads.
PII_KEYS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "full_name",
        "middle_name",
        "given_name",
        "family_name",
        "surname",
        "firstname",
        "lastname",
        "email",
        "phone",
        "mobile",
        "address",
        "street",
        "postal_code",
        "zip",
        "zip_code",
        "birthday",
        "birth_date",
        "date_of_birth",
        "dob",
        "ip",
        "ip_address",
    }
)
PII_KEY_PARTS = ("email", "phone", "mobile", "address", "birth")
# A person's name under another key; `product_name` or `plan_name` are not personal.
PERSON_NAME_SUFFIXES = ("first_name", "last_name", "full_name", "customer_name", "contact_name", "holder_name")

_HASHED = re.compile(r"^[0-9a-f]{64}$")
_EMAIL_IN_TEXT = re.compile(r"[\w.+%-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")
_PHONE_IN_TEXT = re.compile(r"(?:\+|%2B)\d{7,15}\b")


def can_see_pii(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.has_perm(REVEAL_PERMISSION))


# -- masking: pure functions ------------------------------------------------------------------------


def mask_email(value: str) -> str:
    """`ada.lovelace@example.co.uk` -> `a***@e***.uk`."""
    text = str(value)
    local, at, domain = text.replace("%40", "@").rpartition("@")
    if not at or not local or not domain:
        return MASK
    host, dot, top = domain.rpartition(".")
    if not dot:
        host, top = domain, ""
    return f"{local[0]}{MASK}@{host[:1]}{MASK}" + (f".{top}" if top else "")


def mask_phone(value) -> str:
    """Every digit but the last two hidden, separators kept: `+44 20 7946 0958` -> `+** ** **** **58`."""
    text = str(value)
    digits = sum(ch.isdigit() for ch in text)
    keep = 2 if digits >= 6 else 0
    seen, out = 0, []
    for ch in text:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > digits - keep else "*")
        else:
            out.append(ch)
    return "".join(out)


def mask_name(value) -> str:
    """Initials: `Ada Lovelace` -> `A. L.`."""
    words = [word for word in str(value).replace("-", " ").split() if word[:1].isalpha()]
    return " ".join(f"{word[0].upper()}." for word in words) or (MASK if str(value).strip() else "")


def is_pii_key(key) -> bool:
    name = str(key).lower()
    return name in PII_KEYS or any(part in name for part in PII_KEY_PARTS) or name.endswith(PERSON_NAME_SUFFIXES)


def mask_text(text: str) -> str:
    """Emails and international phone numbers inside free text (also URL-encoded)."""
    text = _EMAIL_IN_TEXT.sub(lambda match: mask_email(match.group(0)), str(text))
    return _PHONE_IN_TEXT.sub(lambda match: mask_phone(match.group(0)), text)


def mask_value(key, value, *, is_personal: bool = False):
    """One value stored under `key` (a trait, a property, a payload field). `is_personal`: it sits
    inside a personal field (the parts of an `address`), so it is masked whatever its own key."""
    if value is None or isinstance(value, bool) or value == "":
        return value
    if isinstance(value, dict | list | tuple):
        return mask_json(value, key=key, is_personal=is_personal)
    if not (is_personal or is_pii_key(key)):
        return mask_text(value) if isinstance(value, str) else value
    text = str(value)
    if _HASHED.match(text):
        return value
    name = str(key).lower()
    if "email" in name or "@" in text:
        return mask_email(text)
    if "phone" in name or "mobile" in name:
        return mask_phone(text)
    if name.endswith("name"):
        return mask_name(text)
    return MASK


def mask_json(value, key=None, *, is_personal: bool = False):
    """A JSON-like value with every personal field masked, recursively; keys stay readable."""
    if isinstance(value, dict):
        inside = is_personal or (key is not None and is_pii_key(key))
        return {name: mask_json(item, key=name, is_personal=inside) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_json(item, key=key, is_personal=is_personal) for item in value]
    if key is None:
        return mask_text(value) if isinstance(value, str) else value
    return mask_value(key, value, is_personal=is_personal)


def _masked_leaves(value, key=None, is_personal=False):
    """(cleartext, masked) for each string of a JSON-like value that masking changes."""
    if isinstance(value, dict):
        inside = is_personal or (key is not None and is_pii_key(key))
        for name, item in value.items():
            yield from _masked_leaves(item, key=name, is_personal=inside)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _masked_leaves(item, key=key, is_personal=is_personal)
    elif isinstance(value, str):
        masked = mask_text(value) if key is None else mask_value(key, value, is_personal=is_personal)
        if masked != value:
            yield value, masked


def mask_body(text) -> str:
    """A request body or stored payload as text, masked in place so the rest reads exactly as sent:
    JSON and form bodies field by field, anything else for emails and phone numbers."""
    if text is None or text == "":
        return text
    if not isinstance(text, str):
        return json.dumps(mask_json(text), indent=2, sort_keys=True, default=str)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict | list):
        for cleartext, masked in sorted(set(_masked_leaves(parsed)), key=lambda pair: -len(pair[0])):
            for encoded in {json.dumps(cleartext), json.dumps(cleartext, ensure_ascii=False)}:
                text = text.replace(encoded, json.dumps(masked, ensure_ascii=False))
        return mask_text(text)
    if "=" in text and not any(ch.isspace() for ch in text):
        parts = []
        for part in text.split("&"):
            key, equals, value = part.partition("=")
            cleartext = unquote_plus(value)
            masked = mask_value(unquote_plus(key), cleartext) if equals else cleartext
            parts.append(f"{key}={masked}" if equals and masked != cleartext else part)
        return mask_text("&".join(parts))
    return mask_text(text)


def mask_identifier_value(*, normaliser: str, is_pii: bool, value: str) -> str:
    if not is_pii or not value:
        return value
    if normaliser == "email" or "@" in value:
        return mask_email(value)
    if normaliser == "phone":
        return mask_phone(value)
    return f"{value[:1]}{MASK}"


# -- model helpers ----------------------------------------------------------------------------------


def identifier_masked(identifier) -> str:
    """An Identifier's value as everyone sees it (cleartext only when its type is not personal)."""
    kind = identifier.identifier_type
    if not kind.is_pii:
        return identifier.value
    return mask_identifier_value(normaliser=kind.normaliser, is_pii=True, value=identifier.display_value)


def display_name_masked(profile) -> str:
    """Profile.display_name with the person's name as initials; `Profile 12` stays as it is."""
    name = profile.display_name
    return name if name == f"Profile {profile.pk}" else mask_name(name)


def traits_masked(traits: dict) -> dict:
    return {key: mask_value(key, value) for key, value in (traits or {}).items()}


def profile_pii(profile) -> list[dict]:
    """The personal data held on a profile in cleartext: its name, personal identifiers and traits.
    Each entry: field (what the audit log names), label and value."""
    rows = []
    identifiers = (
        profile.identifiers.select_related("identifier_type")
        .filter(identifier_type__is_pii=True)
        .order_by("-identifier_type__priority", "id")
    )
    for identifier in identifiers:
        slug = identifier.identifier_type.slug
        rows.append({"field": f"identifier:{slug}", "label": slug, "value": identifier.display_value})
    for key, value in sorted(profile.clear_traits.items()):
        if is_pii_key(key) and value not in (None, ""):
            rows.append({"field": f"trait:{key}", "label": key, "value": value})
    return rows


def profile_pii_reveal(*, profile, actor: str, where: str) -> list[dict]:
    """Cleartext personal data of one profile, with a `pii.reveal` audit entry (fields, no values)."""
    rows = profile_pii(profile)
    fields = sorted({row["field"] for row in rows})
    audit_record(
        actor=actor,
        action="pii.reveal",
        target=profile,
        summary=f"Revealed personal data of profile #{profile.pk}: {len(fields)} field(s)",
        fields=fields,
        where=re.sub(r"[^\w:.-]", "", where)[:64],
    )
    return rows
