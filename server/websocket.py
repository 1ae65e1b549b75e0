"""graphql-transport-ws with fieldsync's limits: subscriptions per connection and per user.

Strawberry counts operations per connection only, and refuses the one too many with a bare
"Subscription limit reached". This handler refuses it with a typed error that names the
limit, and also counts every live operation of a user across their connections in this
process (a phone and a tablet, or one app that leaks sockets). The count is per process:
behind a load balancer a user may hold up to the limit on each instance, which still
bounds what one stolen token can hold open.

Sockets that never send `connection_init` are closed by strawberry after
`FIELDSYNC_WS_INIT_TIMEOUT_SECONDS` (code 4408); `on_ws_connect` in server/app.py refuses
a missing or invalid token (code 4403).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)

from schema.context import Context


@dataclass(frozen=True)
class SubscriptionLimits:
    per_connection: int = 20
    per_user: int = 50


class LiveConnections:
    """The acknowledged WebSocket connections of this process, by user."""

    def __init__(self) -> None:
        self._by_user: defaultdict[uuid.UUID, set[LimitedWSHandler]] = defaultdict(set)

    def add(self, user: uuid.UUID, handler: LimitedWSHandler) -> None:
        self._by_user[user].add(handler)

    def discard(self, user: uuid.UUID, handler: LimitedWSHandler) -> None:
        handlers = self._by_user.get(user)
        if handlers is not None:
            handlers.discard(handler)
            if not handlers:
                del self._by_user[user]

    def operations(self, user: uuid.UUID) -> int:
        return sum(len(h.operations) for h in self._by_user.get(user, ()))


class LimitedWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Set `limits` and `connections` on the subclass (see `handler_class`)."""

    limits: SubscriptionLimits
    connections: LiveConnections
    _user: uuid.UUID | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        principal = self.context.principal
        if self.connection_acknowledged and principal is not None and self._user is None:
            self._user = principal.user_id
            self.connections.add(self._user, self)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and message["id"] not in self.operations:
            if len(self.operations) >= self.limits.per_connection:
                await self._refuse(message, "connection", self.limits.per_connection,
                                   "FIELDSYNC_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION")
                return
            if self._user is not None and \
                    self.connections.operations(self._user) >= self.limits.per_user:
                await self._refuse(message, "user", self.limits.per_user,
                                   "FIELDSYNC_WS_MAX_SUBSCRIPTIONS_PER_USER")
                return
        await super().handle_subscribe(message)

    async def _refuse(self, message: SubscribeMessage, per: str, limit: int, setting: str) -> None:
        await self.send_message({"id": message["id"], "type": "error", "payload": [{
            "message": f"too many subscriptions open for this {per} (at most {limit}); "
                       "complete one before starting another",
            "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS", "per": per, "limit": limit,
                           "setting": setting}}]})

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            if self._user is not None:
                self.connections.discard(self._user, self)


def handler_class(limits: SubscriptionLimits,
                  connections: LiveConnections) -> type[LimitedWSHandler]:
    """A handler class bound to one app's limits and connection registry."""
    return type("FieldsyncWSHandler", (LimitedWSHandler,),
                {"limits": limits, "connections": connections})

