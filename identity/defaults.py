"""Seed data for identifier types and blocked values (used by the data migration)."""

# slug: (name, role, normaliser, limit per profile, priority, is_pii)
DEFAULT_IDENTIFIER_TYPES = {
    "user_id": ("User id", "canonical", "exact", 1, 100, False),
    "email": ("Email", "canonical", "email", 5, 90, True),
    "phone": ("Phone", "canonical", "phone", 3, 80, True),
    "shopify_customer_id": ("Shopify customer id", "canonical", "exact", 3, 70, False),
    "mindbody_client_id": ("Mindbody client id", "canonical", "exact", 3, 70, False),
    "stripe_customer_id": ("Stripe customer id", "handle", "exact", None, 60, False),
    "anonymous_id": ("Anonymous (device) id", "anonymous", "exact", None, 10, False),
    # An order belongs to one buyer: a handle, so a refund that names only its order finds them.
    "shopify_order_id": ("Shopify order id", "handle", "exact", None, 20, False),
}

# (type slug or None for every type, normalised value, reason)
DEFAULT_BLOCKED_VALUES = [
    ("email", "test@test.com", "placeholder address"),
    ("email", "test@example.com", "placeholder address"),
    ("email", "noreply@example.com", "placeholder address"),
    ("email", "no-reply@example.com", "placeholder address"),
    ("email", "none@none.com", "placeholder address"),
    ("email", "na@na.com", "placeholder address"),
    ("phone", "+10000000000", "placeholder number"),
    ("phone", "+11111111111", "placeholder number"),
    ("phone", "+15555555555", "placeholder number"),
    (None, "null", "serialised null"),
    (None, "none", "serialised null"),
    (None, "undefined", "serialised undefined"),
    (None, "0", "zero"),
    (None, "0000000000", "placeholder number"),
    (None, "n/a", "placeholder"),
    (None, "unknown", "placeholder"),
    (None, "-", "placeholder"),
]
