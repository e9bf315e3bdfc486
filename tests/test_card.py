import pytest

from emoedge.card import ModelCard
from emoedge.categories import CATEGORIES
from emoedge.errors import EmoedgeError


def make_card(**over) -> ModelCard:
    values = dict(
        name="m",
        branches=("body", "place"),
        backbones={"body": "tiny", "place": "tiny"},
        fusion="attention",
        image_size=(96, 128),
        body_size=(64, 64),
    )
    values.update(over)
    return ModelCard(**values)


def test_round_trip_through_json_keeps_every_field():
    card = make_card().with_thresholds([i / 100 for i in range(26)])
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert again.thresholds[3] == pytest.approx(0.03)
    assert again.categories == CATEGORIES


@pytest.mark.parametrize(
    "over, needle",
    [
        ({"branches": ("body", "faces")}, "branches"),
        ({"fusion": "sum"}, "fusion"),
        ({"thresholds": (0.5,) * 3}, "thresholds"),
        ({"image_size": (0, 10)}, "image_size"),
    ],
)
def test_invalid_cards_are_refused_naming_the_field(over, needle):
    with pytest.raises(EmoedgeError, match=needle):
        make_card(**over)


def test_unknown_and_missing_fields_are_named():
    data = make_card().to_dict()
    with pytest.raises(EmoedgeError, match="colour"):
        ModelCard.from_dict({**data, "colour": "red"})
    data.pop("fusion")
    with pytest.raises(EmoedgeError, match="fusion"):
        ModelCard.from_dict(data)
