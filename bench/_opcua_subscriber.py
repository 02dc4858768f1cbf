"""A client that subscribes to every variable of a namespace and counts the data
changes it receives: the load an OPC UA server carries in ``bench/protocols.py``.

Usage: python _opcua_subscriber.py URL NAMESPACE_URI. It prints ``ready N`` once it
follows N variables, and on stdin's end ``received M``, then exits.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from asyncua import Client, ua


class Counting:
    def __init__(self) -> None:
        self.received = 0

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        self.received += 1

    def status_change_notification(self, status: Any) -> None:
        pass


async def variables_under(node: Any, found: list[Any]) -> None:
    for child in await node.get_children():
        if await child.read_node_class() == ua.NodeClass.Variable:
            found.append(child)
        else:
            await variables_under(child, found)


async def main(url: str, namespace_uri: str) -> None:
    async with Client(url, timeout=30) as client:
        index = await client.get_namespace_index(namespace_uri)
        roots = [
            child
            for child in await client.nodes.objects.get_children()
            if child.nodeid.NamespaceIndex == index
        ]
        found: list[Any] = []
        for root in roots:
            await variables_under(root, found)
        # Properties (units, ranges) do not change: the values only.
        found = [
            node
            for node in found
            if str(node.nodeid.Identifier).split("/")[-1] not in ("EngineeringUnits", "EURange")
        ]
        counting = Counting()
        subscription = await client.create_subscription(50, counting)
        await subscription.subscribe_data_change(found, queuesize=1000, sampling_interval=0)
        print(f"ready {len(found)}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        print(f"received {counting.received}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
