"""Masked personal data in templates: `{% load pii %}`.

Filters mask whatever they are given (everyone sees masked values); `{% pii_reveal profile %}` adds
the Reveal button for people who may see personal data. Cleartext reaches a page only through that
button, which is logged.
"""

from django import template

from cdp_site import pii

register = template.Library()


@register.filter
def pii_identifier(identifier) -> str:
    """An Identifier's value, masked when its type holds personal data."""
    return pii.identifier_masked(identifier)


@register.filter
def masked_name(profile) -> str:
    """A profile's display name as initials (`Profile 12` when it has no name)."""
    return pii.display_name_masked(profile)


@register.filter
def pii_trait(value, key):
    """`{{ value|pii_trait:key }}`: a trait (or property) value, masked when the key is personal."""
    return pii.mask_value(key, value)


@register.filter
def mask_pii(value):
    """A JSON-like value (event properties, evidence) with personal fields and emails masked."""
    return pii.mask_json(value)


@register.filter
def mask_body(text):
    """A request body or stored payload (JSON, form or free text) with personal fields masked."""
    return pii.mask_body(text)


@register.inclusion_tag("cdp_site/_pii_reveal.html", takes_context=True)
def pii_reveal(context, profile):
    """The Reveal button for one profile (a profile or its id), shown only to who may see personal data."""
    request = context.get("request")
    user = getattr(request, "user", None)
    profile_id = getattr(profile, "pk", profile)
    match = getattr(request, "resolver_match", None)
    return {
        "can_reveal": bool(profile_id) and pii.can_see_pii(user),
        "profile_id": profile_id,
        "where": match.view_name if match else "",
        "next": request.get_full_path() if request else "",
    }
