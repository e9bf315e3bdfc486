"""`emoedge run --http` as a user runs it, watched by the real clients of a service: three streams (two files and a
live RTSP camera from GStreamer's server), a real browser (Debian's headless Chromium through chromedriver) on the
live page, a real Prometheus server scraping /metrics, the camera killed and restarted, and the streams file edited
and re-read on SIGHUP while the other streams go on.

Each client is a Debian package (chromium, chromium-driver, prometheus, gir1.2-gst-rtsp-server-1.0: `.ci/run`
installs them); without one the test is skipped with the reason. With EMOEDGE_DOCS=1 the page's screenshot is
also written to docs/live-page.png (the README's).
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from cli_helpers import REPO, Background, emoedge_command, wait_until  # type: ignore[import-not-found]
from ports import free_ports  # type: ignore[import-not-found]
from runtime.rtsp_helpers import gstreamer_missing, start_server  # type: ignore[import-not-found]
from service.service_helpers import Progress, clips  # type: ignore[import-not-found]

from emoedge.bench.clip import write_boxes_json
from emoedge.bench.models import random_checkpoint

FRAMES = 6000  # the files outlast the test (tens of frames a second here)
CHROMIUM, CHROMEDRIVER, PROMETHEUS = "/usr/bin/chromium", "/usr/bin/chromedriver", "/usr/bin/prometheus"
TIMEOUT_S = 120


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER, PROMETHEUS):
        if not Path(path).exists():
            return f"{path} not installed (Debian: chromium chromium-driver prometheus)"
    return gstreamer_missing()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_a_served_run_seen_by_a_browser_and_prometheus(browser, tmp_path: Path) -> None:
    http, rtsp, prom = free_ports(3)
    media = {"model": random_checkpoint(tmp_path / "m.pt"), **clips(tmp_path, ["a", "b", "c"], FRAMES)}
    live_boxes = write_boxes_json(tmp_path / "cam.json", [[[40, 40, 120, 200], [180, 40, 260, 200]]] * FRAMES)
    camera = {"id": "cam", "source": f"rtsp://viewer:pa55@127.0.0.1:{rtsp}/test", "boxes": str(live_boxes)}
    files = [{"id": n, "source": str(media[n][0]), "boxes": str(media[n][1])} for n in ("a", "b")]
    sources = tmp_path / "streams.yaml"
    sources.write_text(yaml.safe_dump({"streams": [*files, camera]}))
    url = f"http://127.0.0.1:{http}"
    argv = emoedge_command("run", "--sources", str(sources), "--model", str(media["model"]), "--device", "cpu",
                           "--http", str(http), "--quiet")  # fmt: skip
    server = start_server(rtsp, tmp_path / "rtsp")
    try:
        with Background(argv, tmp_path / "run") as run:
            streams = lambda: {s["id"]: s for s in requests.get(f"{url}/api/streams", timeout=30).json()["streams"]}  # noqa: E731
            run.wait_until(lambda: _status(f"{url}/readyz") == 200, "readiness", TIMEOUT_S)
            run.wait_until(lambda: streams()["cam"]["state"] == "live", "the camera live", TIMEOUT_S)

            _the_page_shows_every_stream(browser, url, ["a", "b", "cam"], tmp_path)
            _prometheus_scrapes_every_stream(prom, http, ["a", "b", "cam"], tmp_path)

            server.stop()  # the camera goes away: health turns 503 naming it, the stream reconnects
            run.wait_until(lambda: _status(f"{url}/healthz") == 503, "/healthz 503", TIMEOUT_S)
            stale = requests.get(f"{url}/healthz", timeout=30).json()
            assert list(stale["stale"]) == ["cam"], stale
            run.wait_until(lambda: streams()["cam"]["state"] == "reconnecting", "the camera reconnecting", TIMEOUT_S)
            server = start_server(rtsp, tmp_path / "rtsp")  # back: live and healthy again
            run.wait_until(lambda: streams()["cam"]["state"] == "live", "the camera live again", TIMEOUT_S)
            run.wait_until(lambda: _status(f"{url}/healthz") == 200, "/healthz 200 again", TIMEOUT_S)
            assert streams()["cam"]["reconnects"] >= 1

            # SIGHUP with an edited file: b removed, c added; a and the camera go on without a pause
            c = {"id": "c", "source": str(media["c"][0]), "boxes": str(media["c"][1])}
            sources.write_text(yaml.safe_dump({"streams": [files[0], camera, c]}))
            with Progress(lambda: streams()["a"]["frames"]) as stays:
                run.send(signal.SIGHUP)
                run.wait_until(lambda: streams().get("c", {}).get("frames", 0) > 20, "frames of the added c", TIMEOUT_S)
            after = streams()
            assert after["b"]["state"] == "removed" and after["a"]["state"] == "reading"
            assert stays.samples > 5 and stays.longest_pause_s < 1.0, stays.longest_pause_s
            # through the API: a 4th stream added, one deleted; a and the camera go on without a pause
            with Progress(lambda: streams()["a"]["frames"]) as stays:
                fourth = {"id": "d", "source": str(media["b"][0]), "boxes": str(media["b"][1])}
                assert requests.post(f"{url}/api/streams", json=fourth, timeout=30).status_code == 201
                run.wait_until(lambda: streams()["d"]["frames"] > 20, "frames of the added d", TIMEOUT_S)
                assert requests.delete(f"{url}/api/streams/c", timeout=30).status_code == 200
                run.wait_until(lambda: streams()["c"]["state"] == "removed", "c removed", TIMEOUT_S)
            assert stays.samples > 5 and stays.longest_pause_s < 1.0, stays.longest_pause_s
            running = {i for i, s in streams().items() if s["state"] in ("reading", "live")}
            assert running == {"a", "cam", "d"}
            assert "pa55" not in run.stderr and "pa55" not in requests.get(f"{url}/api/streams", timeout=30).text

            run.send(signal.SIGTERM)
            assert run.wait(60) == 130
    finally:
        server.stop()


def _the_page_shows_every_stream(browser, url: str, ids: list[str], folder: Path) -> None:
    """Every tile: an image that changes, the stream's state, and a row per track."""
    from selenium.webdriver.common.by import By

    browser.get(url + "/")
    tile = lambda i: browser.find_element(By.CSS_SELECTOR, f'section.tile[data-stream="{i}"]')  # noqa: E731
    for i in ids:
        wait_until(lambda i=i: len(browser.find_elements(By.CSS_SELECTOR, f'section.tile[data-stream="{i}"] tr.track')) == 2,
                   f"two track rows in tile {i}", TIMEOUT_S)  # fmt: skip
        wait_until(lambda i=i: browser.execute_script("return arguments[0].naturalWidth", tile(i).find_element(By.TAG_NAME, "img")) > 0,
                   f"an image in tile {i}", TIMEOUT_S)  # fmt: skip
    for i in ids:
        image = tile(i).find_element(By.TAG_NAME, "img")
        first = image.screenshot_as_png
        wait_until(lambda image=image, first=first: image.screenshot_as_png != first, f"the image of {i} changing", 30)
        state = tile(i).find_element(By.CSS_SELECTOR, ".state").text
        assert state == ("live" if i == "cam" else "reading"), (i, state)
        row = tile(i).find_element(By.CSS_SELECTOR, "tr.track").text
        assert row.startswith("#") and " / " in row, row
    shot = folder / "live-page.png"
    browser.save_screenshot(str(shot))
    if os.environ.get("EMOEDGE_DOCS") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, REPO / "docs" / "live-page.png")


def _prometheus_scrapes_every_stream(port: int, target: int, ids: list[str], folder: Path) -> None:
    """A Prometheus server scraping the run answers emoedge_stream_frames_total for each stream through its API."""
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "emoedge", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}],
    }))  # fmt: skip
    argv = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    with Background(argv, folder / "prometheus", cwd=folder):
        query = f"http://127.0.0.1:{port}/api/v1/query"

        def series() -> dict[str, float]:
            try:
                answer = requests.get(query, params={"query": "emoedge_stream_frames_total"}, timeout=10).json()
            except (requests.ConnectionError, ValueError):
                return {}
            return {r["metric"]["stream"]: float(r["value"][1]) for r in answer.get("data", {}).get("result", [])}

        wait_until(lambda: set(series()) == set(ids), "every stream in Prometheus", TIMEOUT_S)
        assert all(value > 0 for value in series().values())
        up = requests.get(query, params={"query": 'up{job="emoedge"}'}, timeout=10).json()["data"]["result"]
        assert up[0]["value"][1] == "1"


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=10).status_code
    except requests.ConnectionError:
        return 0
