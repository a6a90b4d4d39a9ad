"""`eeg2arm stream --view`: the page in a real browser (Debian's chromium driven by selenium) while a real recording
streams, its WebSocket and access rules over real sockets, and the parts behind it (feed, publisher, arm)."""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from eeg2arm.realtime.live import Decided, StreamSummary
from eeg2arm.realtime.smoothing import Hysteresis
from eeg2arm.realtime.streamer import StepResult
from eeg2arm.realtime.view import open_view
from eeg2arm.realtime.view.arm import REACH, SPEED, SimulatedArm
from eeg2arm.realtime.view.events import About, Publisher, channel_sd
from eeg2arm.realtime.view.feed import Feed
from test_live import invoke, train_on, unique_name

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
HYSTERESIS = ["--enter", 0.6, "--exit", 0.5, "--min-frames", 2]  # the small eyes model's probabilities are mild
TOKEN = "a-view-token-of-32-characters-ok"


@pytest.fixture(autouse=True)
def no_token(monkeypatch):
    monkeypatch.delenv("EEG2ARM_API_TOKEN", raising=False)
    monkeypatch.delenv("EEG2ARM_ALLOWED_HOSTS", raising=False)


@pytest.fixture(scope="module")
def eyes_ckpt(bandpower_dir, tmp_path_factory) -> Path:
    return train_on(bandpower_dir, tmp_path_factory, 2, 32)


@pytest.fixture(scope="module")
def open_then_closed(bandpower_dir, tmp_path_factory) -> Path:
    """12 s of the eyes-open run, then 12 s of the eyes-closed run (each less its channel means, so the join is no
    step): a recording that goes from one class to the other."""
    folder = bandpower_dir.parent / "raw" / "eyes_open_closed"
    parts = []
    for task in ("EO", "EC"):
        raw = mne.io.read_raw(folder / f"sub-01_ses-01_task-{task}_run-01_eeg_0-200s_raw.fif", verbose="error")
        raw.crop(0, 12).load_data(verbose="error").apply_function(lambda x: x - x.mean())
        parts.append(raw)
    path = tmp_path_factory.mktemp("view") / "open_then_closed_raw.fif"
    mne.concatenate_raws(parts, verbose="error").save(path, verbose="error")
    return path


def decision_rows(path: Path) -> list[dict]:
    """The JSON lines of a run, less their LSL timestamps (a replay at real speed and a --fast one differ there)."""
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in path.read_text().splitlines()]


@contextlib.contextmanager
def chromium(folder: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,720", f"--user-data-dir={folder}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = 60.0):
    """Poll a JavaScript expression in the page until it is truthy (the stream sets the pace, not the test)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(f"return {script}"))


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="no chromium/chromedriver: apt-get install chromium chromium-driver (.ci/run does)")
def test_the_view_in_a_real_browser_follows_a_recording_from_one_class_to_the_other(open_then_closed, eyes_ckpt,
                                                                                   tmp_path):
    """Headless chromium opens the view while the recording streams at real speed; it shows both class names and
    the decision going from eyes_open to eyes_closed; a reload and ten more pages at once leave the stream's
    decisions exactly those of a run without the view; the page is told that the stream ended; a screenshot."""
    reference = invoke("stream", "--raw", open_then_closed, "--ckpt", eyes_ckpt, *HYSTERESIS, "--fast",
                       "--device", "cpu", "--out-jsonl", tmp_path / "reference.jsonl")
    assert reference.exit_code == 0, reference.output
    labels = [row["label"] for row in decision_rows(tmp_path / "reference.jsonl")]
    assert labels.index("eyes_open") < labels.index("eyes_closed") and labels[-1] == "eyes_closed", labels

    with chromium(tmp_path / "chromium") as driver:  # started first: the stream does not wait for the browser
        stream = subprocess.Popen([sys.executable, "-m", "eeg2arm", "stream", "--raw", str(open_then_closed),
                                   "--ckpt", str(eyes_ckpt), *map(str, HYSTERESIS), "--device", "cpu", "--view",
                                   "--view-port", "0", "--out-jsonl", str(tmp_path / "viewed.jsonl")],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
        try:
            first = stream.stdout.readline()
            url = re.fullmatch(r"view: (http://127\.0\.0\.1:\d+/) \(open it in a browser\)\n", first)
            assert url, first
            driver.get(url.group(1))
            wait_for(driver, "document.getElementById('decision').textContent === 'eyes_open'")
            legend = driver.find_element("id", "legend").text
            assert "eyes_open" in legend and "eyes_closed" in legend
            driver.refresh()  # a reload: the page starts again from the last 30 s the view holds
            wait_for(driver, "document.getElementById('decision').dataset.index !== undefined")
            main = driver.current_window_handle
            for _ in range(10):  # ten pages at once, each live, then closed
                driver.switch_to.new_window("tab")
                driver.get(url.group(1))
            for handle in [h for h in driver.window_handles if h != main]:
                driver.switch_to.window(handle)
                wait_for(driver, "Number(document.getElementById('count').textContent) > 0")
                driver.close()
            driver.switch_to.window(main)
            wait_for(driver, "document.getElementById('decision').textContent === 'eyes_closed'")
            wait_for(driver, "document.getElementById('status').textContent === 'stream ended'")
            ended = driver.find_element("id", "ended").text
            driver.save_screenshot(str(tmp_path / "view.png"))
            out, _ = stream.communicate(timeout=60)
        finally:
            stream.kill()
    assert stream.returncode == 0, first + out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("feature_frames=") and ended == f"The stream ended. {summary}"
    assert decision_rows(tmp_path / "viewed.jsonl") == decision_rows(tmp_path / "reference.jsonl")
    assert (tmp_path / "view.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_live_lsl_stream_reaches_the_page_decision_by_decision(open_then_closed, eyes_ckpt, tmp_path):
    """Another source: PlayerLSL replays the recording as a live stream, `stream --lsl --view` decodes it, and a
    page (a WebSocket client) gets every decision the stream writes, in order, then the end."""
    from mne_lsl.player import PlayerLSL

    name = unique_name("view")
    player = PlayerLSL(open_then_closed, chunk_size=16, name=name, source_id=name).start()
    stream = subprocess.Popen([sys.executable, "-m", "eeg2arm", "stream", "--lsl", name, "--ckpt", str(eyes_ckpt),
                               "--view", "--view-port", "0", "--duration", "6", "--lsl-timeout", "30",
                               "--out-jsonl", "-", "--device", "cpu"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        first = stream.stderr.readline()  # (with --out-jsonl -, stdout holds only the JSON lines)
        url = re.fullmatch(r"view: (http://127\.0\.0\.1:\d+/) \(open it in a browser\)\n", first)
        assert url, first
        got = messages_of(url.group(1).replace("http", "ws") + "ws", "end")
        out, err = stream.communicate(timeout=60)
    finally:
        player.stop()
        stream.kill()
    assert stream.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert got[0]["source"] == f"LSL stream {name}" and got[0]["backend"] == f"PyTorch {eyes_ckpt}"
    decisions = [m for m in got if m["type"] == "decision"]
    assert len(rows) == 12 and [(m["index"], m["t"], m["label"], m["probs"]) for m in decisions] == \
        [(r["index"], round(r["t"], 3), r["label"], [round(p, 4) for p in r["probs"]]) for r in rows]
    assert got[-1]["type"] == "end" and got[-1]["summary"] == err.strip().splitlines()[-1]


def decided(index: int, t: float, probs: list[float], decision: int, label: str,
            recent: np.ndarray | None = None, bad: tuple[str, ...] = ()) -> Decided:
    result = StepResult(index, np.array(probs), int(np.argmax(probs)), decision)
    return Decided(result, t, 100.0 + t, label, index, bad, False, False, recent)


ABOUT = About(("left_hand", "right_hand"), ("C3", "Cz", "C4"), Hysteresis(0.6, 0.5, 2), frame_step=0.25, pool=2,
              source="test", backend="PyTorch")


def test_the_publisher_moves_the_arm_as_the_controller_and_counts_what_is_lost():
    """Each decision a velocity command held until the next (examples/arm_controller.py's rule), the arm stopping at
    its reach; how long a decision holds; frames lost in a gap and decisions the view let go."""
    publisher = Publisher(ABOUT, StreamSummary())
    steps = [decided(0, 0.5, [0.2, 0.8], 1, "right_hand"), decided(1, 1.0, [0.1, 0.9], 1, "right_hand"),
             decided(2, 1.5, [0.7, 0.3], 0, "left_hand"), decided(3, 2.0, [0.5, 0.5], -1, "undecided"),
             decided(5, 5.0, [0.5, 0.5], -1, "undecided")]  # #4 never reached the view; 2.5 s of signal lost
    messages = [json.loads(publisher.decision(d, changed, arrived=float(i)))
                for i, (d, changed) in enumerate(zip(steps, [True, False, True, True, False]))]
    assert [m["arm"]["vx"] for m in messages] == [round(v, 4) for v in (SPEED * 0.8, SPEED * 0.9, -SPEED * 0.7, 0, 0)]
    expected_x = [0.0, 0.5 * SPEED * 0.8, 0.5 * SPEED * (0.8 + 0.9), 0.5 * SPEED * (0.8 + 0.9 - 0.7)]
    assert [m["arm"]["x"] for m in messages[:4]] == [round(x, 4) for x in expected_x]
    assert [m["held_s"] for m in messages] == [0.0, 0.5, 0.0, 0.0, 3.0]
    assert messages[-1]["stats"]["view_dropped"] == 1
    assert messages[-1]["stats"]["frames_lost"] == round(3.0 / 0.25) - 2 * 2  # 12 frames' time, 4 decided
    assert [m["label"] for m in messages] == ["right_hand", "right_hand", "left_hand", "undecided", "undecided"]

    arm = SimulatedArm()
    for t in range(100):  # full speed right for 100 s: it stops at its reach
        arm.move(float(t), "right_hand", 1.0)
    assert arm.x == REACH


def test_signal_health_is_each_channels_spread_over_its_last_second(bandpower_dir):
    """On a second of real EEG with one electrode flat and one NaN: the spread of each channel that has samples,
    the flat one named bad with why."""
    raw = mne.io.read_raw(bandpower_dir.parent / "raw" / "eegmmidb" / "S001" / "S001R04.edf", verbose="error")
    recent = raw.get_data(picks=["C3..", "Cz..", "C4.."], units="uV", start=0, stop=160)
    recent[1] = 5.0  # flat
    recent[2, 40:] = np.nan  # dropped out
    assert channel_sd(recent, 3) == [round(float(recent[0].std()), 1), 0.0, round(float(recent[2, :40].std()), 1)]
    message = json.loads(Publisher(ABOUT, StreamSummary()).decision(
        decided(0, 1.0, [0.5, 0.5], -1, "undecided", recent, bad=("Cz", "C4")), True, 0.0))
    assert message["bad"] == {"Cz": "flat", "C4": "NaN"} and message["sd_uv"] == channel_sd(recent, 3)


def test_a_page_that_falls_behind_loses_the_oldest_events_and_is_told_how_many():
    feed = Feed(keep=3)
    for n in range(5):
        feed.put(f"event {n}")
    events, lost, end = feed.after(1, wait=0)  # a page that had seen event 1 of 5: 2 (event 1) is gone
    assert events == [(3, "event 2"), (4, "event 3"), (5, "event 4")] and lost == 1 and end is None
    feed.end("the end")
    assert feed.after(5, wait=10) == ([], 0, "the end")  # the end wakes a waiting page at once


def messages_of(url: str, until: str, **headers) -> list[dict]:
    got = []
    with connect(url, additional_headers=headers or None, open_timeout=10) as ws:
        while not got or got[-1]["type"] != until:
            got.append(json.loads(ws.recv(timeout=30)))
    return got


def test_pages_get_the_history_then_each_decision_and_the_end():
    """A page opened midway gets the decisions so far, then the rest as they come, then how the stream ended."""
    summary = StreamSummary()
    with contextlib.ExitStack() as pages:
        with pytest.raises(RuntimeError), contextlib.ExitStack() as stack:
            view = open_view(stack, config_of(ABOUT), ABOUT.channels, ABOUT.hysteresis, "test", "PyTorch", summary,
                             port=0)
            for i in range(3):
                view.send(decided(i, 0.5 * (i + 1), [0.3, 0.7], 1, "right_hand"), i == 0)
            page = pages.enter_context(connect(view.url.replace("http", "ws") + "ws", open_timeout=10))
            first = [json.loads(page.recv(timeout=30)) for _ in range(4)]
            view.send(decided(3, 2.0, [0.9, 0.1], 0, "left_hand"), True)
            summary.decisions, summary.feature_frames = 4, 8
            raise RuntimeError("the amplifier fell silent")  # the view ends with the stream
        rest = [json.loads(page.recv(timeout=30))]
        while rest[-1]["type"] != "end":
            rest.append(json.loads(page.recv(timeout=30)))
    assert [m["type"] for m in first] == ["meta", "decision", "decision", "decision"]
    assert first[0]["classes"] == ["left_hand", "right_hand"] and first[0]["enter"] == 0.6
    assert [m["index"] for m in first[1:] + rest[:-1]] == [0, 1, 2, 3] and rest[0]["label"] == "left_hand"
    assert rest[-1] == {"type": "end", "how": "error", "error": "the amplifier fell silent",
                        "summary": summary.line()}


def config_of(about: About):
    from eeg2arm.config import EEGConfig

    return EEGConfig(n_classes=2, n_electrodes=3, n_bands=4, class_names=about.classes, frame_step=about.frame_step)


def test_a_token_guards_the_page_and_its_updates(monkeypatch):
    """With EEG2ARM_API_TOKEN set (as the service): the page and its WebSocket need it, given once in the URL (then a
    cookie) or as a bearer header; another site's page and a foreign Host name are refused."""
    monkeypatch.setenv("EEG2ARM_API_TOKEN", TOKEN)
    with contextlib.ExitStack() as stack:
        view = open_view(stack, config_of(ABOUT), ABOUT.channels, ABOUT.hysteresis, "test", "PyTorch",
                         StreamSummary(), port=0)
        assert view.url.endswith("/?token=<EEG2ARM_API_TOKEN>")
        base = view.url.split("?")[0]
        ws_url = base.replace("http", "ws") + "ws"
        assert requests.get(base, timeout=10).status_code == 401
        assert requests.get(base + "?token=wrong-token-of-enough-length", timeout=10).status_code == 401
        session = requests.Session()
        page = session.get(f"{base}?token={TOKEN}", timeout=10)  # follows the redirect to / with the cookie
        assert page.status_code == 200 and page.url == base and "view.js" in page.text
        assert TOKEN not in session.cookies.get("eeg2arm_view")
        cookie = f"eeg2arm_view={session.cookies.get('eeg2arm_view')}"
        assert messages_of(ws_url, "meta", Cookie=cookie)[0]["classes"] == list(ABOUT.classes)
        assert messages_of(ws_url, "meta", Authorization=f"Bearer {TOKEN}")[0]["type"] == "meta"
        refused = {}
        for case, headers in {"no token": {}, "other site": {"Cookie": cookie, "Origin": "http://evil.example"},
                              "foreign host": {"Cookie": cookie, "Host": "evil.example"}}.items():
            with pytest.raises(InvalidStatus) as e:
                messages_of(ws_url, "meta", **headers)
            refused[case] = e.value.response.status_code
        assert refused == {"no token": 401, "other site": 403, "foreign host": 403}


@pytest.mark.parametrize("case", ["exposed_without_token", "port_taken", "port_without_view", "not_a_port"])
def test_view_bad_input_one_line_exit_2(case, open_then_closed, eyes_ckpt, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        args, expected = {
            "exposed_without_token": (["--view", "--view-host", "0.0.0.0"],
                                      "--view-host 0.0.0.0 reaches beyond this machine and EEG2ARM_API_TOKEN is unset"),
            "port_taken": (["--view", "--view-port", port], f"--view-port {port} is taken on 127.0.0.1"),
            "port_without_view": (["--view-port", 9000], "--view-port and --view-host go with --view"),
            "not_a_port": (["--view", "--view-port", 70000], "--view-port 70000 is not a port"),
        }[case]
        result = invoke("stream", "--raw", open_then_closed, "--ckpt", eyes_ckpt, "--fast", "--device", "cpu",
                        "--out-jsonl", tmp_path / "d.jsonl", *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], result.output
    assert list(tmp_path.iterdir()) == []  # nothing decided, nothing written
