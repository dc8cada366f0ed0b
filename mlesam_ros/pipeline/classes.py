"""The classes the node publishes: the model's, or remapped to the user's ids and names.

Perception stacks that consume segmentation have their own label ids (a tracker's ``car`` is
1, a costmap's obstacle classes are 100+) and often want fewer classes than the model knows.
``output.class_map_file`` names a YAML file::

    classes:                  # model class: [published id, published name]
      Cars: [1, vehicle]
      Truck: [1, vehicle]     # several model classes may share an id (and its name)
      Bus: [1, vehicle]
      Pedestrian: [2, person]
    unlisted: [0, background] # optional: every other model class; without it they keep
                              # their model id and name

The remap applies to ``~/labels``, the ``label`` field of ``~/labeled_points`` and
``~/label_info`` alike; the overlay keeps one colour per model class.
``output.labeled_points_classes`` (``car,person`` or ids) keeps only those published classes
in ``~/labeled_points``, e.g. for a tracker that wants road users only.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

MAP_PARAMETER = "output.class_map_file"
FILTER_PARAMETER = "output.labeled_points_classes"
MAX_ID = 65535  # mono16 labels


@dataclass(frozen=True)
class PublishedClasses:
    """Model class → published id, and the published ids' names (``~/label_info``)."""

    ids: np.ndarray  # (num model classes,) uint16: published id of each model class
    names: dict[int, str]  # published id → name, ascending ids

    @property
    def encoding(self) -> str:
        """``mono8`` while every published id fits, else ``mono16``."""
        return "mono8" if max(self.names, default=0) <= 255 else "mono16"

    @property
    def identity(self) -> bool:
        """Whether the published ids are the model's own (nothing to remap)."""
        return bool(np.array_equal(self.ids, np.arange(len(self.ids))))

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """Model labels → published ids (ids past the model's classes keep the last one)."""
        if self.identity:
            return labels
        return np.take(self.ids, np.asarray(labels), mode="clip")

    def packed_rgb(self, model_packed_rgb: np.ndarray) -> np.ndarray:
        """Colour per published id: that of the first model class mapped to it (the cloud)."""
        if self.identity:
            return model_packed_rgb
        table = np.zeros(max(self.names) + 1, dtype=model_packed_rgb.dtype)
        for model_class in range(len(self.ids) - 1, -1, -1):  # the first class wins
            table[self.ids[model_class]] = model_packed_rgb[model_class]
        return table

    def select(self, wanted: Sequence[str]) -> np.ndarray | None:
        """Return the published ids named (any case) or numbered in ``wanted``; None = all."""
        if not wanted:
            return None
        by_name = {name.lower(): class_id for class_id, name in self.names.items()}
        chosen = []
        for item in wanted:
            if item.isdigit() and int(item) in self.names:
                chosen.append(int(item))
            elif item.lower() in by_name:
                chosen.append(by_name[item.lower()])
            else:
                close = difflib.get_close_matches(item.lower(), list(by_name), n=1)
                hint = f"did you mean '{self.names[by_name[close[0]]]}'? " if close else ""
                raise ValueError(
                    f"parameter {FILTER_PARAMETER}: '{item}' is not a published class; "
                    f"{hint}choose from {', '.join(self.names.values())} (or their ids)"
                )
        return np.unique(np.asarray(chosen, dtype=np.uint32))


def model_classes(class_names: Sequence[str]) -> PublishedClasses:
    """Return the model's classes as they are: id = model index, name = model name."""
    return PublishedClasses(np.arange(len(class_names), dtype=np.uint16),
                            {index: str(name) for index, name in enumerate(class_names)})


def _entry(value: object, where: str) -> tuple[int, str]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2 or isinstance(value[0], bool)
            or not isinstance(value[0], int) or not 0 <= value[0] <= MAX_ID):  # fmt: skip
        raise ValueError(f"{where}: expected [id, name] with an id in 0..{MAX_ID}, got {value!r}")
    return int(value[0]), str(value[1])


def load_class_map(path: str | Path, class_names: Sequence[str]) -> PublishedClasses:
    """Read ``output.class_map_file`` (see the module docstring) against the model's classes."""
    path = Path(path)
    where = f"parameter {MAP_PARAMETER}: {path}"
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{where} is not valid YAML ({problem})") from None
    if not isinstance(document, dict) or not isinstance(document.get("classes"), dict):
        raise ValueError(
            f"{where} needs 'classes:' with 'model class: [id, name]' lines (e.g. "
            "'classes: {Cars: [1, vehicle]}')"
        )
    unknown_keys = set(document) - {"classes", "unlisted"}
    if unknown_keys:
        raise ValueError(f"{where}: unknown keys {sorted(unknown_keys)}; use classes, unlisted")
    unlisted = document.get("unlisted")
    unlisted = None if unlisted is None else _entry(unlisted, f"{where}: unlisted")
    index_of = {str(name): index for index, name in enumerate(class_names)}
    ids = np.zeros(len(class_names), dtype=np.uint16)
    names: dict[int, str] = {}
    listed = set()
    entries = []
    for model_name, value in document["classes"].items():
        model_name = str(model_name)
        if model_name not in index_of:
            close = difflib.get_close_matches(model_name, list(index_of), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(
                f"{where}: '{model_name}' is not a class of the model; {hint}its classes are "
                f"{', '.join(index_of)}"
            )
        entries.append((index_of[model_name], _entry(value, f"{where}: {model_name}")))
        listed.add(index_of[model_name])
    for index, name in enumerate(class_names):
        if index not in listed:
            entries.append((index, unlisted if unlisted is not None else (index, str(name))))
    for index, (class_id, name) in entries:
        if names.setdefault(class_id, name) != name:
            raise ValueError(
                f"{where}: id {class_id} is named both '{names[class_id]}' and '{name}' (via "
                f"'{class_names[index]}'); give one id one name"
                + ("" if unlisted else ", or set 'unlisted' (unlisted classes keep their ids)")
            )
        ids[index] = class_id
    return PublishedClasses(ids, dict(sorted(names.items())))


def published_classes(class_map_file: str, class_names: Sequence[str]) -> PublishedClasses:
    """Return the classes to publish: the class map file's, else the model's."""
    if not class_map_file:
        return model_classes(class_names)
    return load_class_map(class_map_file, class_names)


__all__ = ["PublishedClasses", "load_class_map", "model_classes", "published_classes"]
