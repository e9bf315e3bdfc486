"""Events to MQTT against a real broker (Debian's mosquitto on 127.0.0.1): delivered in order, queued while the
broker is down at start or restarting, dropped and counted only past the queue bound, credentials never printed;
and every record validates against the event schema shipped in the package."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from ports import free_port  # type: ignore[import-not-found]
from runtime.mqtt_broker import Mosquitto, Subscriber  # type: ignore[import-not-found]

from emoedge.errors import EmoedgeError
from emoedge.runtime.publish import Broker, MqttPublisher

pytest.importorskip("paho.mqtt.client")


def records(count: int, start: int = 0) -> list[dict]:
    return [{"type": "person", "frame": i, "track_id": 1} for i in range(start, start + count)]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    client = Subscriber(broker.port, "emoedge/#")
    try:
        yield client
    finally:
        client.close()


def payloads(messages: list[tuple[str, bytes]]) -> list[dict]:
    return [json.loads(payload) for _, payload in messages]


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://host/topic", "expected mqtt://"),
        ("mqtt://host", "expected a host and a topic"),
        ("mqtt://host:99999/t", "port must be a number"),
        ("mqtt://host/a/+/b", "no wildcards"),
        ("mqtt://host/a/{camera}", "unknown placeholder(s) ['camera']"),
        ("mqtt://user:s3cr%3Ft@host/a?x=1", "no query"),
    ],
)
def test_bad_publish_urls_are_one_line_without_credentials(url: str, needle: str) -> None:
    with pytest.raises(EmoedgeError, match="--publish") as caught:
        Broker.parse(url)
    assert needle in str(caught.value) and "s3cr" not in str(caught.value)


def test_urls_give_host_port_topic_and_credentials() -> None:
    broker = Broker.parse("mqtts://cam%40site:p%2Fa%3Fss@broker.lan/sites/7/{stream}")
    assert (broker.host, broker.port, broker.tls) == ("broker.lan", 8883, True)
    assert (broker.username, broker.password) == ("cam@site", "p/a?ss")
    assert broker.topic_for("door") == "sites/7/door" and "p/a?ss" not in broker.shown
    assert Broker.parse("mqtt://h:1999/t").port == 1999


def test_records_arrive_in_order_and_are_counted(
    broker: Mosquitto, subscriber: Subscriber, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="emoedge.runtime.publish")
    sent = records(50)
    with MqttPublisher(f"mqtt://127.0.0.1:{broker.port}/emoedge/{{stream}}") as publisher:
        for record in sent:
            assert publisher.publish(record, stream="cam1")
    assert (publisher.published, publisher.dropped, publisher.undelivered) == (50, 0, 0)
    messages = subscriber.wait_for(50)
    assert payloads(messages) == sent
    assert {topic for topic, _ in messages} == {"emoedge/cam1"}
    assert caplog.text == ""  # the run's own disconnection at the end is no outage to report


def test_a_broker_down_at_start_gets_everything_once_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = Mosquitto(tmp_path, free_port())
    caplog.set_level(logging.WARNING, logger="emoedge.runtime.publish")
    publisher = MqttPublisher(f"mqtt://user:s3cret@127.0.0.1:{server.port}/emoedge/x", queue=100)
    try:
        for record in records(10):
            assert publisher.publish(record)
        assert publisher.published == 0
        server.start()
        subscriber = Subscriber(server.port, "emoedge/#")
        try:
            publisher.close(timeout=15)
            assert (publisher.published, publisher.dropped, publisher.undelivered) == (10, 0, 0)
            assert payloads(subscriber.wait_for(10)) == records(10)
        finally:
            subscriber.close()
    finally:
        server.stop()
    assert "s3cret" not in caplog.text
    assert "not reachable" in caplog.text and caplog.text.count("not reachable") == 1  # once per outage


def test_a_restarted_broker_loses_nothing_within_the_bound(
    broker: Mosquitto, subscriber: Subscriber, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="emoedge.runtime.publish")
    publisher = MqttPublisher(f"mqtt://127.0.0.1:{broker.port}/emoedge/x", queue=1000)
    for record in records(20):
        publisher.publish(record)
    assert len(subscriber.wait_for(20)) == 20
    broker.stop()  # SIGTERM: the broker saves its state, as a restarting broker does
    for record in records(30, start=20):
        assert publisher.publish(record)  # queued while the broker is down
    broker.start()
    publisher.close(timeout=20)
    assert (publisher.published, publisher.dropped, publisher.undelivered) == (50, 0, 0)
    received = payloads(subscriber.wait_for(50))
    # QoS 1 is at least once, in order within one connection only: a resent duplicate, and records published while
    # the client (re)connects (paho resends its queue on its network thread as new ones go out) may come early.
    by_frame = {r["frame"]: r for r in received}
    assert sorted(by_frame.values(), key=lambda r: r["frame"]) == records(50) and len(received) >= 50
    assert "lost" in caplog.text and "back after" in caplog.text


def test_past_the_bound_records_are_dropped_and_counted(tmp_path: Path) -> None:
    server = Mosquitto(tmp_path, free_port())
    publisher = MqttPublisher(f"mqtt://127.0.0.1:{server.port}/emoedge/x", queue=5)
    try:
        accepted = [publisher.publish(record) for record in records(8)]
        assert accepted == [True] * 5 + [False] * 3 and publisher.dropped == 3
        server.start()
        subscriber = Subscriber(server.port, "emoedge/#")
        try:
            publisher.close(timeout=15)
            assert payloads(subscriber.wait_for(5)) == records(5)
        finally:
            subscriber.close()
    finally:
        server.stop()


def test_the_queue_bound_is_checked() -> None:
    with pytest.raises(EmoedgeError, match=r"publish_queue 0: expected an integer from 1 to 65535"):
        MqttPublisher("mqtt://127.0.0.1:1/x", queue=0)


def test_the_event_schema_is_shipped_and_strict() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(resources.files("emoedge").joinpath("schemas/events.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    person = {
        "type": "person", "time": 0.04, "frame": 1, "track_id": 3, "box": [1.0, 2.0, 30.0, 40.0],
        "confidence": 0.9, "inferred": True, "scores": {"Peace": 0.7}, "categories": ["Peace"],
        "modality_weights": {"body": 0.5, "place": 0.25, "scene": 0.25},
    }  # fmt: skip
    assert not list(validator.iter_errors(person))
    for broken in ({**person, "frame": -1}, {**person, "extra": 1}, {**person, "scores": {"Peace": 1.5}}):
        assert list(validator.iter_errors(broken))
