import pytest
import torch

from emoedge.errors import EmoedgeError
from emoedge.model.net import EmotionNet

SUBSETS = [["body"], ["body", "place"], ["body", "scene"], ["body", "place", "scene"]]


def tiny_net(branches, fusion="attention", vad=False, **kw) -> EmotionNet:
    return EmotionNet(branches, {b: "tiny" for b in branches}, fusion=fusion, vad=vad, dropout=0.0, **kw).eval()


@pytest.mark.parametrize("branches", SUBSETS, ids="+".join)
@pytest.mark.parametrize("fusion", ["attention", "concat"])
def test_outputs_for_every_subset_and_fusion(branches, fusion):
    net = tiny_net(branches, fusion, vad=True)
    out = net(torch.rand(4, 3, 64, 64), torch.rand(4, 3, 48, 48))
    assert out["logits"].shape == (4, 26)
    assert set(out["branch_logits"]) == set(branches)
    assert all(v.shape == (4, 26) for v in out["branch_logits"].values())
    assert out["vad"].shape == (4, 3)
    if fusion == "attention":
        assert out["weights"].shape == (4, len(branches))
        torch.testing.assert_close(out["weights"].sum(1), torch.ones(4))
    else:
        assert out["weights"] is None


def test_one_frame_context_is_shared_by_all_persons():
    torch.manual_seed(0)
    net = tiny_net(["body", "place", "scene"])
    frame, bodies = torch.rand(1, 3, 64, 64), torch.rand(5, 3, 48, 48)
    shared = net(frame, bodies)
    repeated = net(frame.expand(5, -1, -1, -1), bodies)
    torch.testing.assert_close(shared["logits"], repeated["logits"])
    torch.testing.assert_close(shared["weights"], repeated["weights"])


def test_context_runs_once_per_frame_whatever_the_person_count():
    net = tiny_net(["body", "place", "scene"])
    calls = {"place": 0, "scene": 0, "body": 0}
    for name in calls:
        net.encoders[name].register_forward_hook(lambda m, i, o, n=name: calls.__setitem__(n, calls[n] + i[0].shape[0]))
    net(torch.rand(1, 3, 64, 64), torch.rand(7, 3, 48, 48))
    assert calls == {"place": 1, "scene": 1, "body": 7}


def test_mixed_backbones_are_projected_for_attention():
    net = EmotionNet(["body", "place"], {"body": "tiny", "place": "mobilenet_v3_small"}, fusion="attention").eval()
    out = net(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert out["logits"].shape == (2, 26)


def test_image_count_must_match_persons_or_be_one():
    net = tiny_net(["body", "place"])
    with pytest.raises(EmoedgeError, match="2 whole images for 3 persons"):
        net(torch.rand(2, 3, 64, 64), torch.rand(3, 3, 48, 48))
