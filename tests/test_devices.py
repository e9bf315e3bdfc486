"""Device strings: one parser (emoedge.devices) for every consumer; each good spelling's conversions, each bad one's
single line naming the key, the value and what is accepted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from emoedge.devices import DEVICE_HELP, TORCH_KINDS, Device, parse_device, spelled
from emoedge.errors import EmoedgeError

GOOD = [
    # text, device, str, torch_device, ultralytics
    ("auto", Device("auto"), "auto", None, None),
    ("cpu", Device("cpu"), "cpu", "cpu", "cpu"),
    ("cuda", Device("cuda"), "cuda", "cuda", "cuda:0"),
    ("cuda:0", Device("cuda", 0), "cuda:0", "cuda:0", "cuda:0"),
    ("cuda:12", Device("cuda", 12), "cuda:12", "cuda:12", "cuda:12"),
    ("cuda:01", Device("cuda", 1), "cuda:1", "cuda:1", "cuda:1"),
    ("tensorrt", Device("tensorrt"), "tensorrt", "cuda", "cuda:0"),
    ("tensorrt:3", Device("tensorrt", 3), "tensorrt:3", "cuda:3", "cuda:3"),
    # OpenVINO's device names, in either case; its inputs live in host memory, and a detector beside it on the CPU
    ("openvino", Device("openvino"), "openvino", "cpu", "cpu"),
    ("openvino:CPU", Device("openvino", target="CPU"), "openvino:CPU", "cpu", "cpu"),
    ("openvino:gpu", Device("openvino", target="GPU"), "openvino:GPU", "cpu", "cpu"),
    ("openvino:GPU.1", Device("openvino", target="GPU.1"), "openvino:GPU.1", "cpu", "cpu"),
    ("openvino:NPU", Device("openvino", target="NPU"), "openvino:NPU", "cpu", "cpu"),
    ("openvino:AUTO", Device("openvino", target="AUTO"), "openvino:AUTO", "cpu", "cpu"),
]
EVERY_KIND = "auto, cpu, cuda[:K], tensorrt[:K] or openvino[:CPU|GPU|NPU|AUTO]"


@pytest.mark.parametrize(("text", "device", "canonical", "torch_device", "ultralytics"), GOOD)
def test_good_spellings_and_their_conversions(text, device, canonical, torch_device, ultralytics):
    parsed = parse_device(text)
    assert parsed == device and str(parsed) == canonical and parse_device(str(parsed)) == parsed
    assert parsed.ultralytics == ultralytics
    if torch_device is None:
        with pytest.raises(ValueError, match="resolve it first"):
            _ = parsed.torch_device
    else:
        assert parsed.torch_device == torch_device


@pytest.mark.parametrize(
    ("text", "cuda", "resolved"),
    [("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cuda:1", False, "cuda:1")],
)
def test_auto_resolves_for_torch(text, cuda, resolved):
    assert str(parse_device(text).resolve(cuda)) == resolved


@pytest.mark.parametrize(
    "text",
    ["", "gpu", "gpu7", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda:1:2", " cuda", "cuda ", "cpu:0", "auto:1",
     "mps", "tensorrt:", 0, None, "openvino:", "openvino:0", "openvino:TPU", "openvino:NPU.1", "openvino:GPU.x",
     "cuda:GPU", "cpu:CPU", "OPENVINO"],
)  # fmt: skip
def test_bad_spellings_are_one_line_naming_key_value_and_what_is_accepted(text):
    with pytest.raises(EmoedgeError) as caught:
        parse_device(text, "run.device")  # type: ignore[arg-type]
    assert str(caught.value) == f"run.device {text!r}: expected {EVERY_KIND}"


@pytest.mark.parametrize(
    ("text", "kinds", "who", "message"),
    [
        ("tensorrt", TORCH_KINDS, "", "device 'tensorrt': expected auto, cpu or cuda[:K]"),
        (
            "cpu",
            ("auto", "cuda"),
            "the tensorrt backend",
            "device 'cpu': the tensorrt backend runs on auto or cuda[:K]",
        ),
        ("auto", ("cpu", "cuda"), "", "device 'auto': expected cpu or cuda[:K]"),
    ],
)
def test_a_consumer_narrows_the_kinds_and_says_so(text, kinds, who, message):
    with pytest.raises(EmoedgeError) as caught:
        parse_device(text, kinds=kinds, who=who)
    assert str(caught.value) == message
    assert parse_device("cuda:2", kinds=kinds, who=who) == Device("cuda", 2)


@pytest.mark.parametrize(
    ("kind", "index", "target"),
    [("gpu", None, None), ("cpu", 0, None), ("auto", 1, None), ("cuda", -1, None), ("openvino", 0, None),
     ("cpu", None, "CPU"), ("openvino", None, "TPU")],
)  # fmt: skip
def test_a_device_built_directly_is_checked_too(kind, index, target):
    with pytest.raises(EmoedgeError, match="expected auto, cpu, cuda"):
        Device(kind, index, target)  # type: ignore[arg-type]


def test_openvino_names_its_device_for_openvino():
    assert [parse_device(t).openvino for t in ("openvino", "openvino:gpu.1", "auto")] == ["CPU", "GPU.1", "CPU"]


def test_one_help_text_names_every_kind():
    assert DEVICE_HELP.startswith(spelled() + " (") and spelled() == EVERY_KIND
    assert spelled(("auto",)) == "auto"


def test_importing_it_imports_no_torch():
    code = "import sys, emoedge.devices; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
