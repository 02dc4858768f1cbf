"""A live plant and its publisher alone, in a process of its own: for tests that kill it.

``factory-twin up`` runs the plant beside the twin; a test of the MQTT last
will needs the plant in a process it can kill with -9 while the twin and the
broker go on. This script builds what ``api.runtime.line.Stack`` builds for the plant
(a realtime plant, its publisher with the last will, its command handler) from
the package's public parts, connects to ``--mqtt-url``, announces the line
online and prints one line, ``ready keepalive=<s>``, then runs until killed.

    python tests/plant_process.py --mqtt-url mqtt://127.0.0.1:1883 [--config x.yaml]
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import uuid

from sensors.commands import CommandHandler
from sensors.mqtt import connect, new_client, parse_mqtt_url
from sensors.publisher import PlantPublisher
from sensors.topics import LineTopics
from twin.config.line import load_config
from twin.sim.live import LiveRunner, realtime_environment
from twin.sim.plant import Plant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--config", help="line config YAML (default: the packaged line)")
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    config = load_config(args.config)
    line = config.line
    topics = LineTopics(line.site, line.area, line.id)
    env = realtime_environment(args.speed)
    plant = Plant(config, seed=args.seed, env=env)
    runner = LiveRunner(env, args.speed)
    client = new_client(f"test-plant-{uuid.uuid4().hex[:8]}")
    publisher = PlantPublisher(plant, client, topics, rng=random.Random(args.seed), live=runner)
    publisher.attach()  # sets the last will: before connect
    commands = CommandHandler(
        plant,
        client,
        topics,
        source=publisher.source,
        control=runner,
        schedule=runner.call_soon,
    )
    client.on_connect = commands.on_connect
    client.on_message = commands.on_message
    client.on_subscribe = commands.on_subscribe
    connect(client, parse_mqtt_url(args.mqtt_url))
    if not commands.subscribed.wait(10):
        raise SystemExit("the broker did not confirm the command subscriptions")
    publisher.announce("online")
    runner.start()
    print(f"ready keepalive={client.keepalive}", flush=True)  # noqa: T201 - the test reads it
    threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
