"""Two small exports whose simulated resolution is known exactly (see test_simulation.py)."""

from identity.simulation import DraftRule

SHOP = """Customer Email,Phone,customer_ref,user_id
ada@example.com,+1 415 555 0100,r1,u1
BOB@example.com,,r2,u2
test@test.com,,r3,u3
not-an-email,,r4,
carol@example.com,,r5,u5
bob@example.com,,r6,u1
"""

BOOKINGS = """email,phone,anonymous_id,stripe_customer_id
ada@example.com,,dev-1,
,(415) 555-0100,,cus_9
dan@example.com,,dev-2,
,+1 212 555 0199,dev-2,
carol@example.com,,,cus_9
,,dev-3,
ada@example.com,,dev-3,
carol@example.com,+1 212 555 0199,,
,12,,
"""

SHOP_MAPPING = {"Customer Email": "email", "customer_ref": "ignore"}

# The seeded live identifier types (identity/defaults.py), as draft rules.
RULES = [
    DraftRule("user_id", "canonical", "exact", 1, 100),
    DraftRule("email", "canonical", "email", 5, 90),
    DraftRule("phone", "canonical", "phone", 3, 80),
    DraftRule("shopify_customer_id", "canonical", "exact", 3, 70),
    DraftRule("mindbody_client_id", "canonical", "exact", 3, 70),
    DraftRule("stripe_customer_id", "handle", "exact", None, 60),
    DraftRule("shopify_order_id", "handle", "exact", None, 20),
    DraftRule("anonymous_id", "anonymous", "exact", None, 10),
]
BLOCKED = [("email", "test@test.com"), (None, "null")]

SHOP_ROWS = {
    2: {"user_id": "u1", "email": "ada@example.com", "phone": "+14155550100"},
    3: {"user_id": "u2", "email": "bob@example.com"},
    7: {"user_id": "u1", "email": "bob@example.com"},
}
BOOKINGS_ROWS = {
    2: {"email": "ada@example.com", "anonymous_id": "dev-1"},
    5: {"phone": "+12125550199", "anonymous_id": "dev-2"},
    6: {"email": "carol@example.com", "stripe_customer_id": "cus_9"},
    7: {"anonymous_id": "dev-3"},
    8: {"email": "ada@example.com", "anonymous_id": "dev-3"},
    9: {"email": "carol@example.com", "phone": "+12125550199"},
}
