"""One mapper per source kind: a sender's payload in, canonical events out.

A mapper is a plain function `map_raw_event(raw_event) -> list[CanonicalEvent]` that reads
`raw_event.payload`, `.headers`, `.topic` and `.received_at`. It raises `MappingError` for a
payload it cannot map (the raw event is quarantined with that reason) and returns [] for a topic
it deliberately ignores.
"""

from importlib import import_module

_MODULES = {
    "tracking": "profiles.mappers.tracking",
    "stripe": "profiles.mappers.stripe",
    "shopify": "profiles.mappers.shopify",
    "mindbody": "profiles.mappers.mindbody",
    "standard_webhook": "profiles.mappers.standard_webhooks",
    "csv": "profiles.mappers.csv_rows",
}


def mapper_for(kind: str):
    return import_module(_MODULES[kind]).map_raw_event
