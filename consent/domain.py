"""Consent purposes and how senders' vocabularies map to them."""

EMAIL_MARKETING = "email_marketing"
SMS_MARKETING = "sms_marketing"
ADVERTISING = "advertising"
ANALYTICS = "analytics"
PERSONALISATION = "personalisation"
PURPOSES = (
    (EMAIL_MARKETING, "Email marketing"),
    (SMS_MARKETING, "SMS marketing"),
    (ADVERTISING, "Advertising"),
    (ANALYTICS, "Analytics"),
    (PERSONALISATION, "Personalisation"),
)
PURPOSE_SLUGS = frozenset(slug for slug, _ in PURPOSES)

# Consent-manager categories (Segment's context.consent.categoryPreferences, OneTrust, ...).
_CATEGORY_ALIASES = {
    "email": EMAIL_MARKETING,
    "email_marketing": EMAIL_MARKETING,
    "marketing": EMAIL_MARKETING,
    "sms": SMS_MARKETING,
    "sms_marketing": SMS_MARKETING,
    "advertising": ADVERTISING,
    "ads": ADVERTISING,
    "targeting": ADVERTISING,
    "analytics": ANALYTICS,
    "performance": ANALYTICS,
    "personalisation": PERSONALISATION,
    "personalization": PERSONALISATION,
    "functional": PERSONALISATION,
}


def purpose_for_category(category: str) -> str | None:
    key = str(category).strip().lower().replace(" ", "_").replace("-", "_")
    return _CATEGORY_ALIASES.get(key)
