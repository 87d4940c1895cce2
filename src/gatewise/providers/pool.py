"""One `ProviderClient` per wire format per gateway, created on first use.

HTTP adapters share the gateway's single pooled transport; in-process engines (llama.cpp,
LiteLLM) are imported only when a deployment actually uses them, so `import gatewise` and a
gateway that never touches the local model stay light.
"""

from __future__ import annotations

from gatewise.providers.base import ProviderClient, Target
from gatewise.providers.http import HttpProviderClient
from gatewise.providers.registry import load_object, resolve
from gatewise.transport.base import Transport
from gatewise.transport.network import Network


class ProviderPool:
    def __init__(self, transport: Transport | None = None, *,
                 network: Network | None = None) -> None:
        self._transport = transport
        # Proxies and TLS for the default transport (a transport passed in brings its own).
        self._network = network
        self._clients: dict[str, ProviderClient] = {}

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            from gatewise.transport.h1 import H1Transport

            self._transport = H1Transport(network=self._network)
        return self._transport

    def client_for(self, target: Target) -> ProviderClient:
        client = self._clients.get(target.wire)
        if client is None:
            kind, spec = resolve(target.wire)
            factory = load_object(spec)
            client = HttpProviderClient(factory(), self.transport) if kind == "adapter" \
                else factory()
            self._clients[target.wire] = client
        return client

    def register(self, wire: str, client: ProviderClient) -> None:
        """Installs a client for a wire format (test doubles, custom engines)."""
        self._clients[wire] = client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._transport is not None:
            await self._transport.aclose()
