"""Logins for the embedded broker: the twin's and the plant's user, nobody else.

amqtt loads authentication plugins by their dotted path; this one admits a
client whose user name and password match one of the configured logins
(compared in constant time) and refuses everyone else, anonymous clients
included. ``factory-twin up`` uses it whenever MQTT logins are set and no
external broker is named (docs/security.md).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from amqtt.plugins.base import BaseAuthPlugin


class LoginAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Admit only the configured logins."""

    @dataclass
    class Config:
        users: dict[str, str] = field(default_factory=dict)
        """User name to password."""

    async def authenticate(self, *, session: Any) -> bool:
        users: dict[str, str] = self._get_config_option("users", {}) or {}
        username = getattr(session, "username", None)
        password = getattr(session, "password", None)
        if not username or password is None:
            return False
        expected = users.get(username)
        if expected is None:
            return False
        given = password.encode() if isinstance(password, str) else bytes(password)
        return hmac.compare_digest(given, expected.encode())


__all__ = ["LoginAuthPlugin"]
