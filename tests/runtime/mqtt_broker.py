"""A real MQTT broker for tests: Debian's mosquitto on 127.0.0.1, and a QoS-1 subscriber that collects messages.

The broker keeps its state on disk (`persistence true`), so a stop and restart keeps the subscriber's session and
the messages queued for it, as a production broker would; the subscriber's session is persistent (clean_session
off) for the same reason. No bound on what it queues for the subscriber (`max_queued_messages 0`; mosquitto keeps
1000 by default): after a restart the run delivers its whole backlog at once, perhaps before the subscriber is back,
and a test counts what the broker acknowledged against what the subscriber received. Started as root (CI), mosquitto
would drop to its own user and could not write its persistence into the test's private folder, so every restart
would lose the queued messages and the subscriber's session: it runs as the test's user (`user`).
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ports import free_port  # type: ignore[import-not-found]


class Mosquitto:
    """mosquitto on 127.0.0.1:`port`, its persistence in `folder`; start, stop and restart at will."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if binary is None:
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.binary, self.folder, self.port = binary, folder, port or free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\nmax_queued_messages 0\n"
            f"persistence_location {folder}/\nuser {getpass.getuser()}\nlog_dest file {folder}/mosquitto.log\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self, attempts: int = 3) -> Mosquitto:
        """Start it and wait until it listens. A broker that exits at once (its port held a moment longer by a
        client's connection attempt) is started again; the last failure names mosquitto's own log lines."""
        for _ in range(attempts):
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
            time.sleep(0.5)
        log = self.folder / "mosquitto.log"
        tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
        raise RuntimeError(f"mosquitto did not listen on {self.port} after {attempts} starts: {tail}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        self.process = None


class Subscriber:
    """Collects the payloads of `topic` (QoS 1, persistent session) on paho's network thread."""

    def __init__(self, port: int, topic: str = "#", client_id: str = "emoedge-test-subscriber") -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscription not acknowledged"

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload))

    def wait_for(self, count: int, timeout: float = 20.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.05)
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
