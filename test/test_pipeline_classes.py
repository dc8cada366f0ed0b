"""Class remap and labelled-points filter: labels, points and LabelInfo tell the same story."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from conftest import drive_records, replay_records

from mlesam_ros.data.classes import DELIVER_CLASSES
from mlesam_ros.msgs import image_to_numpy, pointcloud2_to_array
from mlesam_ros.pipeline import messages as m
from mlesam_ros.pipeline.classes import load_class_map, model_classes, published_classes


def class_map(tmp_path, text: str):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    return path


def test_class_map_merges_classes_and_names_the_rest(tmp_path) -> None:
    path = class_map(tmp_path, "classes:\n  Cars: [1, vehicle]\n  Truck: [1, vehicle]\n"
                               "  Pedestrian: [300, person]\nunlisted: [0, background]\n")
    classes = load_class_map(path, DELIVER_CLASSES)
    assert classes.names == {0: "background", 1: "vehicle", 300: "person"}
    assert classes.encoding == "mono16" and not classes.identity
    model = {name: index for index, name in enumerate(DELIVER_CLASSES)}
    labels = np.array([[model["Cars"], model["Truck"], model["Pedestrian"], model["Sky"]]])
    np.testing.assert_array_equal(classes.apply(labels), [[1, 1, 300, 0]])
    np.testing.assert_array_equal(classes.select(["PERSON", "1"]), [1, 300])
    assert classes.select([]) is None
    with pytest.raises(ValueError, match=r"'persn' is not a published class; did you mean "
                                         r"'person'\?"):
        classes.select(["persn"])


def test_without_unlisted_the_other_classes_keep_their_ids(tmp_path) -> None:
    classes = load_class_map(class_map(tmp_path, "classes:\n  Cars: [100, car]\n"),
                             DELIVER_CLASSES)  # fmt: skip
    assert classes.names[100] == "car" and classes.names[0] == "Building"
    assert len(classes.names) == len(DELIVER_CLASSES) and classes.encoding == "mono8"
    assert published_classes("", DELIVER_CLASSES).identity
    assert model_classes(DELIVER_CLASSES).names[9] == "Cars"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("classes:\n  Car: [1, vehicle]\n", "'Car' is not a class of the model; did you mean"),
        ("classes:\n  Cars: [0, vehicle]\n", "id 0 is named both 'vehicle' and 'Building'"),
        ("classes:\n  Cars: [1, a]\n  Bus: [1, b]\nunlisted: [0, x]\n", "named both 'a' and 'b'"),
        ("classes:\n  Cars: [70000, car]\n", "id in 0..65535"),
        ("classes:\n  Cars: car\n", "expected [id, name]"),
        ("Cars: [1, car]\n", "needs 'classes:'"),
        ("classes: {Cars: [1, car]}\nother: [0, x]\n", "unknown keys ['other']"),
        ("classes: [\n", "not valid YAML"),
    ],
    ids=["unknown-class", "clash-with-kept", "clash", "id-range", "entry", "no-classes",
         "unknown-key", "yaml"],
)
def test_bad_class_maps_name_the_parameter_and_the_fix(tmp_path, text, needle) -> None:
    with pytest.raises(ValueError) as caught:
        load_class_map(class_map(tmp_path, text), DELIVER_CLASSES)
    assert needle in str(caught.value) and "output.class_map_file" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_remap_and_filter_through_the_node(tmp_path, frames, model_path) -> None:
    records = drive_records(frames)
    _, plain = replay_records(tmp_path / "plain", records, model_path)
    plain_points = [pointcloud2_to_array(msg) for _, msg in plain[m.LABELED_POINTS_TOPIC]]
    common = [label for label, _ in collections.Counter(
        np.concatenate([p["label"] for p in plain_points]).tolist()).most_common(3)]  # fmt: skip
    names = [DELIVER_CLASSES[label] for label in common]
    path = class_map(tmp_path, f"classes:\n  {names[0]}: [7, first]\n  {names[1]}: [7, first]\n"
                               f"  {names[2]}: [9, third]\nunlisted: [0, rest]\n")
    _, mapped = replay_records(tmp_path / "mapped", records, model_path, **{
        "output.class_map_file": str(path), "output.labeled_points_classes": "third"})
    (_, info), = mapped[m.LABEL_INFO_TOPIC]
    assert [(c.class_id, c.class_name) for c in info.class_map] == [
        (0, "rest"), (7, "first"), (9, "third")]
    lut = np.zeros(len(DELIVER_CLASSES), np.uint8)
    lut[common[:2]], lut[common[2]] = 7, 9
    for (_, before), (_, after) in zip(plain[m.LABELS_TOPIC], mapped[m.LABELS_TOPIC],
                                       strict=True):  # fmt: skip
        np.testing.assert_array_equal(image_to_numpy(after), lut[image_to_numpy(before)])
    mapped_points = [pointcloud2_to_array(msg) for _, msg in mapped[m.LABELED_POINTS_TOPIC]]
    assert sum(len(p) for p in mapped_points) > 0
    for before, after in zip(plain_points, mapped_points, strict=True):
        kept = before[before["label"] == common[2]]
        assert set(after["label"].tolist()) <= {9} and len(after) == len(kept)
        np.testing.assert_array_equal(after["x"], kept["x"])
