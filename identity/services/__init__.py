"""Writes to the identity graph: merges, unmerges, review decisions and proposed links.

Each public service runs in its own transaction and takes the identity lock first.
"""

from identity.services.merges import IdentityActionError, merge_unmerge, separations_between
from identity.services.review import ProfileLinkOutcome, link_approve, link_reject, profiles_link

__all__ = [
    "IdentityActionError",
    "ProfileLinkOutcome",
    "link_approve",
    "link_reject",
    "merge_unmerge",
    "profiles_link",
    "separations_between",
]
