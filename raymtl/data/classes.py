"""The published class vocabularies of the two datasets.

They are used to check metadata (a row naming a class outside the vocabulary is rejected) and
by the synthetic generator. The class list a model trains on is what the metadata holds
(`esc10` gives 10 event classes), in the published order below.
"""

from __future__ import annotations

# ESC-50 `target` -> `category`, and whether the class is in ESC-10 (meta/esc50.csv).
ESC50_CLASSES: tuple[str, ...] = (
    "dog",
    "rooster",
    "pig",
    "cow",
    "frog",
    "cat",
    "hen",
    "insects",
    "sheep",
    "crow",
    "rain",
    "sea_waves",
    "crackling_fire",
    "crickets",
    "chirping_birds",
    "water_drops",
    "wind",
    "pouring_water",
    "toilet_flush",
    "thunderstorm",
    "crying_baby",
    "sneezing",
    "clapping",
    "breathing",
    "coughing",
    "footsteps",
    "laughing",
    "brushing_teeth",
    "snoring",
    "drinking_sipping",
    "door_wood_knock",
    "mouse_click",
    "keyboard_typing",
    "door_wood_creaks",
    "can_opening",
    "washing_machine",
    "vacuum_cleaner",
    "clock_alarm",
    "clock_tick",
    "glass_breaking",
    "helicopter",
    "chainsaw",
    "siren",
    "car_horn",
    "engine",
    "train",
    "church_bells",
    "airplane",
    "fireworks",
    "hand_saw",
)
ESC10_TARGETS: frozenset[int] = frozenset({0, 1, 10, 11, 12, 20, 21, 38, 40, 41})
ESC50_FOLDS: tuple[int, ...] = (1, 2, 3, 4, 5)

# TUT Acoustic Scenes 2017 scene labels, in the published (alphabetical) order.
TUT2017_SCENES: tuple[str, ...] = (
    "beach",
    "bus",
    "cafe/restaurant",
    "car",
    "city_center",
    "forest_path",
    "grocery_store",
    "home",
    "library",
    "metro_station",
    "office",
    "park",
    "residential_area",
    "train",
    "tram",
)
TUT2017_FOLDS: tuple[int, ...] = (1, 2, 3, 4)
