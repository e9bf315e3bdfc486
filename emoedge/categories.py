"""EMOTIC's label vocabulary, in the official order used by every array in emoedge."""

CATEGORIES: tuple[str, ...] = (
    "Affection",
    "Anger",
    "Annoyance",
    "Anticipation",
    "Aversion",
    "Confidence",
    "Disapproval",
    "Disconnection",
    "Disquietment",
    "Doubt/Confusion",
    "Embarrassment",
    "Engagement",
    "Esteem",
    "Excitement",
    "Fatigue",
    "Fear",
    "Happiness",
    "Pain",
    "Peace",
    "Pleasure",
    "Sadness",
    "Sensitivity",
    "Suffering",
    "Surprise",
    "Sympathy",
    "Yearning",
)
NUM_CATEGORIES = len(CATEGORIES)
CATEGORY_INDEX: dict[str, int] = {name: i for i, name in enumerate(CATEGORIES)}
VAD_NAMES: tuple[str, ...] = ("valence", "arousal", "dominance")
# Branch names in the canonical order of modality weights: body, place, scene gist.
BRANCHES: tuple[str, ...] = ("body", "place", "scene")
