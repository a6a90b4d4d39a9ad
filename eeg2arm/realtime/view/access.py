"""Who may watch: the view binds to loopback unless asked otherwise, and follows the service's token rule
(serving/settings.py, serving/front.py, serving/guard.py).

- EEG2ARM_API_TOKEN set: the page and its updates need it, given once as `/?token=<token>` (a cookie keeps it for
  the page, its reloads and its WebSocket) or as `Authorization: Bearer <token>`.
- A host beyond loopback without the token is refused: the session's EEG decisions would be anyone's to read.
- Host headers other than IP addresses, localhost and EEG2ARM_ALLOWED_HOSTS are refused (DNS rebinding), and so is
  a WebSocket opened from a page of another origin (any site the browser shows could otherwise read the stream).
"""
from __future__ import annotations

import hashlib
import hmac
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

from serving.settings import env_hosts, env_token, host_allowed
from serving.startup import is_loopback

from ...errors import UserInputError

COOKIE = "eeg2arm_view"
TOKEN_ENV = "EEG2ARM_API_TOKEN"


class Access:
    """The rule for one view, from the environment: `check_bind` refuses an exposed bind without a token."""

    def __init__(self, host: str):
        self.token = env_token(TOKEN_ENV)  # UserInputError when set but too short
        self.hosts = env_hosts("EEG2ARM_ALLOWED_HOSTS")
        if not is_loopback(host) and self.token is None:
            raise UserInputError(f"--view-host {host} reaches beyond this machine and {TOKEN_ENV} is unset: anyone "
                                 f"who can reach it could watch the session; set {TOKEN_ENV}=$(openssl rand -hex 32) "
                                 f"and open the view with /?token=<token>, or leave --view-host out (127.0.0.1)")
        # what the cookie holds: derived from the token, so that the token itself is never stored by the browser
        self.cookie = hmac.new(self.token.encode(), b"eeg2arm-view", hashlib.sha256).hexdigest() if self.token else ""

    def url_hint(self) -> str:
        return f"?token=<{TOKEN_ENV}>" if self.token else ""

    def given_token(self, path: str) -> bool:
        """Whether the URL carries the right token (`?token=`)."""
        tokens = parse_qs(urlsplit(path).query).get("token", [])
        return self.token is not None and any(hmac.compare_digest(t.encode(), self.token.encode()) for t in tokens)

    def authorized(self, headers: dict[str, str]) -> bool:
        """The token as a bearer header or the view's cookie (always, when no token is set)."""
        if self.token is None:
            return True
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token.encode()):
            return True
        try:
            morsel = SimpleCookie(headers.get("cookie", "")).get(COOKIE)
        except CookieError:
            return False
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self.cookie.encode())

    def refusal(self, headers: dict[str, str], websocket: bool) -> str | None:
        """Why a request is refused (403), or None; the token is checked apart (401)."""
        if not host_allowed(headers.get("host"), self.hosts):
            return ("this view answers only to IP addresses, localhost and the names in EEG2ARM_ALLOWED_HOSTS: open "
                    "it by one of them, or add its name there")
        origin = headers.get("origin")
        if websocket and origin is not None and origin.split("://", 1)[-1].lower() != headers.get("host", "").lower():
            return "the view's updates go to its own page only, not to another site's"
        return None
