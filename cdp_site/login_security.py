"""Log-in rate limiting and lockout.

Failed log-ins are counted in Django's cache per username and per client address, in a fixed
window (`LOGIN_FAILURE_WINDOW_SECONDS`) that starts at the first failure. When a username reaches
`LOGIN_MAX_FAILURES_PER_USERNAME` failures, or an address `LOGIN_MAX_FAILURES_PER_IP`, that username
or address is locked out for `LOGIN_LOCKOUT_SECONDS`: every attempt is refused without checking
the password, even the right one. A success clears the username's count (not the address's, so an
attacker who owns one account cannot reset the counter of a password-spraying address).

`LockoutModelBackend` enforces it for every `authenticate()` call (the log-in page, the admin's
log-in page, anything else); `LockoutAuthenticationForm` checks it first to say so plainly.
Each failure and each lockout is logged (never the password) and written to the audit log.

The cache must be shared by every process for the limits to hold: Redis when REDIS_URL is set, else
the database cache in production (settings_production). Counting uses only cache.add(), which is
atomic on both, so simultaneous failures on several machines are each counted. When the cache is
unreachable, lockout fails open (see _warn_cache_unavailable).

The typed username is kept only when such an account exists: people type passwords into the
username box, and an unknown name may be one. Unknown names are kept as a short keyed hash, enough
to see that the same one was tried again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from cdp_site.audit import audit_record
from cdp_site.shared_cache import CACHE_UNAVAILABLE, OutageWarning

logger = logging.getLogger("cdp_site.login_security")

# The current counting window of a username or address: (random id, when it ends). Each failure in it
# claims the next numbered slot (_FAILURE); a fresh window id starts the count again.
_WINDOW = "login-security:window:{kind}:{key}"
_FAILURE = "login-security:failure:{kind}:{key}:{window}:{number}"
_LOCK = "login-security:lock:{kind}:{key}"

# When the cache is unreachable, lockout fails open: log-ins are checked by password alone and
# failures are not counted. Failing closed would lock every user out of the back-office for as long
# as Redis is down (and hand anyone who can knock Redis over a way to do that); each failure is still
# logged and written to the audit log, and the warning says the protection is off.
_warn_cache_unavailable = OutageWarning(logger, "login_lockout_unavailable error=%s: log-ins are not rate limited")


@dataclass(frozen=True)
class Lockout:
    kind: str  # "username" or "address"
    seconds_left: int

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.seconds_left / 60))
        unit = "minute" if minutes == 1 else "minutes"
        return f"Too many failed log-in attempts. Log-in is locked for {minutes} {unit}; try again later."


def client_address(request) -> str:
    """The caller's address: REMOTE_ADDR, or the entry `LOGIN_TRUSTED_PROXY_COUNT` proxies added to
    X-Forwarded-For (never the left-most entry, which the client writes itself)."""
    if request is None:
        return ""
    proxies = settings.LOGIN_TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if proxies and len(forwarded) >= proxies:
        return forwarded[-proxies][:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


def _digest(value: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]


def _username_key(username: str) -> str:
    return _digest(username.strip().casefold())


def _keys(username: str, address: str) -> list[tuple[str, str, int]]:
    """(kind, cache key part, threshold) of each counter the attempt belongs to."""
    keys = []
    if username:
        keys.append(("username", _username_key(username), settings.LOGIN_MAX_FAILURES_PER_USERNAME))
    if address:
        keys.append(("address", _digest(address), settings.LOGIN_MAX_FAILURES_PER_IP))
    return keys


def login_lockout_get(*, username: str, address: str) -> Lockout | None:
    """The lockout in force for this username or address, if any (none when the cache is down)."""
    keys = _keys(username, address)
    try:
        locks = cache.get_many([_LOCK.format(kind=kind, key=key) for kind, key, _ in keys])
    except CACHE_UNAVAILABLE as error:
        _warn_cache_unavailable(error)
        return None
    for kind, key, _ in keys:
        until = locks.get(_LOCK.format(kind=kind, key=key))
        if until is not None:
            seconds_left = int(until - _now())
            if seconds_left > 0:
                return Lockout(kind=kind, seconds_left=seconds_left)
    return None


def _failure_count(kind: str, key: str, threshold: int) -> int:
    """Count one failure in the current window of this username or address; return the window's count.

    Each failure claims the next free numbered slot with cache.add(), which is atomic on every
    backend we run (Redis SET NX, the database cache's primary key, LocMem's lock), and every key is
    written with its own timeout. cache.incr() is neither on the database cache: it is a get and a
    set, so simultaneous failures would count once, and the set re-arms the key with the cache's
    default timeout, which would cut the window short."""
    window_key = _WINDOW.format(kind=kind, key=key)
    seconds = settings.LOGIN_FAILURE_WINDOW_SECONDS
    fresh = (secrets.token_hex(8), _now() + seconds)
    if cache.add(window_key, fresh, timeout=seconds):
        window_id, ends_at = fresh
    else:  # another failure opened the window (or it ended a moment ago: count in the fresh one)
        window_id, ends_at = cache.get(window_key) or fresh
    timeout = max(1, math.ceil(ends_at - _now()))
    slots = [_FAILURE.format(kind=kind, key=key, window=window_id, number=n) for n in range(1, threshold + 1)]
    taken = cache.get_many(slots)
    for number, slot in enumerate(slots, start=1):
        if slot not in taken and cache.add(slot, True, timeout=timeout):
            return number
    return threshold  # every slot is taken: failures raced past the limit together


def _now() -> float:
    return timezone.now().timestamp()


def _who(username: str) -> tuple[str, dict]:
    """A loggable name for the typed username: the account's, or a hash when there is none."""
    user_model = get_user_model()
    existing = (
        user_model._default_manager.filter(**{f"{user_model.USERNAME_FIELD}__iexact": username.strip()})
        .values_list(user_model.USERNAME_FIELD, flat=True)
        .first()
        if username
        else None
    )
    if existing is not None:
        return existing, {"username": existing}
    return "an unknown username", {"username": None, "username_hash": _username_key(username) if username else None}


def login_failure_record(*, username: str, request) -> Lockout | None:
    """Count one failed log-in; lock the username or address out when it reaches its threshold."""
    address = client_address(request)
    who, detail = _who(username)
    counts, reached = {}, []
    try:
        for kind, key, threshold in _keys(username, address):
            counts[kind] = _failure_count(kind, key, threshold)
            if counts[kind] >= threshold:
                reached.append((kind, key))
    except CACHE_UNAVAILABLE as error:
        _warn_cache_unavailable(error)
        reached = []

    logger.warning("login_failed user=%s address=%s failures=%s", who, address, counts)
    audit_record(
        actor="anonymous",
        action="auth.login_failed",
        summary=f"Failed log-in for {who} from {address or 'an unknown address'}",
        **detail,
        address=address,
        failures=counts,
    )
    seconds = settings.LOGIN_LOCKOUT_SECONDS
    for kind, key in reached:
        try:
            cache.set(_LOCK.format(kind=kind, key=key), _now() + seconds, timeout=seconds)
            cache.delete(_WINDOW.format(kind=kind, key=key))  # a fresh count once the lockout ends
        except CACHE_UNAVAILABLE as error:
            _warn_cache_unavailable(error)
        logger.warning(
            "login_lockout kind=%s user=%s address=%s failures=%s seconds=%s", kind, who, address, counts[kind], seconds
        )
        audit_record(
            actor="anonymous",
            action="auth.login_lockout",
            summary=f"Log-in locked for {seconds // 60} min after {counts[kind]} failures ({kind}: "
            f"{who if kind == 'username' else address})",
            **detail,
            address=address,
            locked=kind,
            failures=counts[kind],
            lockout_seconds=seconds,
        )
    return Lockout(kind=reached[0][0], seconds_left=seconds) if reached else None


def login_success_record(*, user, request) -> None:
    """Clear the username's failure count and audit the log-in."""
    try:
        cache.delete(_WINDOW.format(kind="username", key=_username_key(user.get_username())))
    except CACHE_UNAVAILABLE as error:
        _warn_cache_unavailable(error)
    address = client_address(request)
    logger.info("login_succeeded user=%s address=%s", user.get_username(), address)
    audit_record(
        actor=f"user:{user.get_username()}",
        action="auth.login",
        target=user,
        summary=f"Logged in from {address or 'an unknown address'}",
        address=address,
    )


class LockoutModelBackend(ModelBackend):
    """ModelBackend that refuses locked-out usernames and addresses and counts failures."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        lockout = login_lockout_get(username=username, address=client_address(request))
        if lockout is not None:
            logger.warning(
                "login_refused_locked kind=%s user=%s address=%s",
                lockout.kind,
                _who(username)[0],
                client_address(request),
            )
            raise PermissionDenied(lockout.message)  # stops authenticate(): no other backend is tried
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_failure_record(username=username, request=request)
        return user


class LockoutAuthenticationForm(AuthenticationForm):
    """The log-in form, saying plainly when a lockout is in force."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "locked_out": "%(message)s",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        lockout = login_lockout_get(username=username, address=address)
        if lockout is None:
            try:
                return super().clean()
            except forms.ValidationError:
                # The failure just counted may have started a lockout: say so now rather than next time.
                lockout = login_lockout_get(username=username, address=address)
                if lockout is None:
                    raise
        raise forms.ValidationError(
            self.error_messages["locked_out"], code="locked_out", params={"message": lockout.message}
        )


class LockoutLoginView(LoginView):
    form_class = LockoutAuthenticationForm

    def form_valid(self, form):
        response = super().form_valid(form)
        login_success_record(user=form.get_user(), request=self.request)
        return response
