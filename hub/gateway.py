"""Who the caller is when Sunbird's gateway stands in front: the portal's proxy (`decorateRequestHeaders`
in SunbirdEd-portal's `proxyUtils.js`) and the app send the user's token in `x-authenticated-user-token`
and put Kong's own consumer JWT (the portal's API key, no user's) in `Authorization`. So when the user
header is there, `Authorization` belongs to the gateway and is never taken for a user; without it, the
hub is called directly and the bearer token is the user's.

`X-Authenticated-Userid` is what the portal's session says; a token of someone else beside it is a
mixed-up or forged request, refused as Sunbird's OPA refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping

from hub import errors
from hub.identity import Principal, bearer

USER_TOKEN = "x-authenticated-user-token"
USER_ID = "X-Authenticated-Userid"


def presented_token(headers: Mapping[str, str]) -> str:
    """The user's token: the gateway's user header (bare, or as `Bearer <token>`), else `Authorization`."""
    gateway = headers.get(USER_TOKEN, "").strip()
    if gateway:
        scheme, _, rest = gateway.partition(" ")
        return rest.strip() if scheme.lower() == "bearer" and rest.strip() else gateway
    return bearer(headers.get("Authorization"))


def check_user_header(headers: Mapping[str, str], who: Principal) -> None:
    claimed = headers.get(USER_ID, "").strip()
    if claimed and claimed != who.user_id:
        raise errors.USER_MISMATCH()
