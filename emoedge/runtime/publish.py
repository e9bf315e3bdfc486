"""Events to an MQTT broker: the event log's JSON records, published with QoS 1 off the video path.

Why paho-mqtt's own machinery: with QoS 1 paho keeps every message the broker has not acknowledged and sends it
again after a reconnect (in order); `max_queued_messages_set` bounds that store, and a publish past the bound is
refused at once and counted as dropped, so the video work never waits for a broker. The client connects
asynchronously and reconnects with back-off on its own network thread: a broker that is down at start, or restarts
mid-run, costs queue space, not frames. Delivery is at least once (a message in flight when the connection broke
is sent again, marked as a duplicate). Credentials in the URL are used, never printed.
"""

from __future__ import annotations

import json
import logging
import string
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from emoedge.errors import EmoedgeError
from emoedge.runtime.redact import redact_url
from emoedge.runtime.settings import MAX_QUEUE, PUBLISH_QUEUE
from emoedge.settings import checked

log = logging.getLogger(__name__)

SCHEMES = {"mqtt": 1883, "mqtts": 8883}
QOS = 1
BACKOFF_S = (0.5, 8.0)  # first and longest wait between reconnect attempts (the sources' back-off)
CLOSE_TIMEOUT_S = 5.0  # how long closing waits for the broker to acknowledge what is still queued


@dataclass(frozen=True)
class Broker:
    """Where events go: a parsed `mqtt[s]://[user[:password]@]host[:port]/topic` URL."""

    host: str
    port: int
    topic: str  # may hold "{stream}", replaced by each record's stream id
    tls: bool
    username: str | None
    password: str | None
    shown: str  # the URL as messages show it: credentials hidden

    @classmethod
    def parse(cls, url: str) -> Broker:
        """Every problem is one line naming the (redacted) URL and what was expected."""
        shown = redact_url(url)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise EmoedgeError(f"--publish {shown}: expected mqtt://[user:pass@]host[:port]/topic (or mqtts://)")
        try:
            port = parts.port or SCHEMES[scheme]
        except ValueError:
            raise EmoedgeError(f"--publish {shown}: the port must be a number from 0 to 65535") from None
        topic = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not topic:
            raise EmoedgeError(f"--publish {shown}: expected a host and a topic, as in mqtt://host/emoedge/{{stream}}")
        if parts.query or parts.fragment or any(c in topic for c in "+#\0"):
            raise EmoedgeError(f"--publish {shown}: a topic to publish to has no wildcards (+, #) and no query")
        fields = {name for _, name, _, _ in string.Formatter().parse(topic) if name is not None}
        if fields - {"stream"}:
            raise EmoedgeError(
                f"--publish {shown}: unknown placeholder(s) {sorted(fields - {'stream'})}; use {{stream}}"
            )
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port, topic, scheme == "mqtts", username, password, shown)

    def topic_for(self, stream: str) -> str:
        return self.topic.replace("{stream}", stream)


class MqttPublisher:
    """Publishes records to a broker; `published`, `dropped` (past the queue bound) and `undelivered` (still
    unacknowledged when closed) count what happened. Use as a context manager."""

    def __init__(self, url: str, *, queue: int = PUBLISH_QUEUE, client_id: str = "") -> None:
        queue = checked(int, queue, "publish_queue", low=1, high=MAX_QUEUE)
        import paho.mqtt.client as mqtt  # optional: the `runtime` extra

        self.broker = Broker.parse(url)
        self.published = self.dropped = self.undelivered = 0
        self._closed = False
        self._pending: set[int] = set()  # message ids the broker has not acknowledged yet
        self._acked: deque[int] = deque()  # ids acknowledged, appended on paho's network thread
        self._down_since: float | None = time.monotonic()  # not connected yet
        self._down_reported = False
        self._lock = threading.Lock()
        self._refused = mqtt.MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        client.max_queued_messages_set(queue)
        client.reconnect_delay_set(*BACKOFF_S)
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_publish = lambda _c, _u, mid, *_: self._acked.append(mid)
        client.on_connect_fail = lambda *_: self._down("not reachable")
        client.on_disconnect = lambda *args: self._down(f"lost ({args[3]})")
        client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        client.loop_start()  # the network thread: connects, retries the first connection, reconnects
        self._client = client

    def publish(self, record: dict[str, Any], stream: str = "") -> bool:
        """Queue one record (never blocks); False if it was dropped because the queue is full."""
        payload = json.dumps(record, separators=(",", ":"))
        info = self._client.publish(self.broker.topic_for(stream), payload, qos=QOS)
        if info.rc == self._refused:
            self.dropped += 1
            return False
        self._pending.add(info.mid)
        self._collect()
        return True

    @property
    def waiting(self) -> int:
        """Records queued or sent and not acknowledged yet (the queue the broker has still to drain)."""
        return len(self._pending)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Wait up to `timeout` s for the broker to acknowledge what is queued, then disconnect (once)."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        while self._collect() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.undelivered = len(self._pending)
        self._client.disconnect()
        self._client.loop_stop()

    def _collect(self) -> int:
        """Count the messages acknowledged since the last call; returns how many still wait."""
        while self._acked:
            mid = self._acked.popleft()
            if mid in self._pending:
                self._pending.remove(mid)
                self.published += 1
        return len(self._pending)

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if reason.is_failure:
            self._down(f"refused the connection ({reason})")
            return
        with self._lock:
            since, reported = self._down_since, self._down_reported
            self._down_since, self._down_reported = None, False
        if reported and since is not None:
            log.warning("MQTT broker %s back after a %.1f s outage", self.broker.shown, time.monotonic() - since)

    def _down(self, what: str) -> None:
        """One line per outage, not one per reconnect attempt (called on paho's network thread); none for the
        disconnection `close` asks for."""
        if self._closed:
            return
        with self._lock:
            if self._down_since is None:
                self._down_since = time.monotonic()
            if self._down_reported:
                return
            self._down_reported = True
        log.warning("MQTT broker %s %s; queueing events and reconnecting", self.broker.shown, what)

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
