"""Class names of the three datasets, in the order labels are numbered.

A cache numbers only the classes that occur in it (a synthetic subset of AVE gets labels 0..k-1), in
the canonical order below, so real and synthetic data share one convention.
"""

from __future__ import annotations

# CREMA-D emotion codes as they appear in file names, and readable names.
CREMA_EMOTIONS: dict[str, str] = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
CREMA_SENTENCES: tuple[str, ...] = (
    "DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI",
)  # fmt: skip
CREMA_LEVELS: tuple[str, ...] = ("LO", "MD", "HI", "XX")

# The 28 AVE categories exactly as written in Annotations.txt and the split lists (AudioSet names: seven
# hold ", ", e.g. "Violin, fiddle"; fields are '&'-separated, so the comma is part of the name).
AVE_CLASSES: tuple[str, ...] = (
    "Accordion",
    "Acoustic guitar",
    "Baby cry, infant cry",
    "Banjo",
    "Bark",
    "Bus",
    "Cat",
    "Chainsaw",
    "Church bell",
    "Clock",
    "Female speech, woman speaking",
    "Fixed-wing aircraft, airplane",
    "Flute",
    "Frying (food)",
    "Goat",
    "Helicopter",
    "Horse",
    "Male speech, man speaking",
    "Mandolin",
    "Motorcycle",
    "Race car, auto racing",
    "Rodents, rats, mice",
    "Shofar",
    "Toilet flush",
    "Train horn",
    "Truck",
    "Ukulele",
    "Violin, fiddle",
)

# UrbanSound8K classes; the index is the classID in `<fsID>-<classID>-<occurrenceID>-<sliceID>.wav`.
US8K_CLASSES: tuple[str, ...] = (
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
)


def ordered_present(present: set[str], canonical: tuple[str, ...]) -> list[str]:
    """Classes that occur, canonical ones first in canonical order, unknown extras sorted after."""
    known = [c for c in canonical if c in present]
    return known + sorted(present - set(canonical))
