"""Class groups from the WordNet hierarchy: hand-built trees with known answers, then the shipped ImageNet files.

The hierarchy and the group assignment (ClassHierarchy, load_hierarchy, class_groups, DEFAULT_GROUPS) live in
.ci/make_imagenet_hierarchy.py, which precomputes the default groups; helpers reads them (imagenet_groups)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers as lib

DATA = Path(__file__).resolve().parent / "data"

ROOT = Path(__file__).resolve().parents[1]
#: How the tests run the script: from the root, helpers importable (as the script's usage says).
RUN_SCRIPT = {"capture_output": True, "text": True, "env": {**os.environ, "PYTHONPATH": str(ROOT)}, "cwd": ROOT}
HIERARCHY = ROOT / "tests" / "data" / "imagenet_hierarchy.json"
DATA_NOUN = Path("/usr/share/wordnet/data.noun")
_spec = importlib.util.spec_from_file_location("make_imagenet_hierarchy", ROOT / ".ci" / "make_imagenet_hierarchy.py")
hier = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(hier)

# --------------------------------------------------------------------------------------------
# A hand-built tree (7 classes, marked *):
#   entity ─┬─ animal ─┬─ dog ─┬─ toy dog ── Chihuahua*
#           │          │       └─ husky*
#           │          ├─ cat ── tabby*
#           │          └─ wolf*
#           ├─ vehicle ─┬─ car (automobile, n_car1) ── cab*
#           │           └─ car (railway car, n_car2) ── freight car*
#           └─ widget*
# --------------------------------------------------------------------------------------------
TINY_NODES = {
    "n_root": ("entity", None),
    "n_animal": ("animal", "n_root"),
    "n_dog": ("dog", "n_animal"),
    "n_toy": ("toy dog", "n_dog"),
    "n_chi": ("Chihuahua", "n_toy"),
    "n_husky": ("husky", "n_dog"),
    "n_cat": ("cat", "n_animal"),
    "n_tabby": ("tabby", "n_cat"),
    "n_wolf": ("wolf", "n_animal"),
    "n_vehicle": ("vehicle", "n_root"),
    "n_car1": ("car", "n_vehicle"),
    "n_cab": ("cab", "n_car1"),
    "n_car2": ("car", "n_vehicle"),
    "n_freight": ("freight car", "n_car2"),
    "n_widget": ("widget", "n_root"),
}
TINY_WNIDS = ["n_chi", "n_husky", "n_tabby", "n_wolf", "n_cab", "n_freight", "n_widget"]
CHI, HUSKY, TABBY, WOLF, CAB, FREIGHT, WIDGET = range(7)


def write_hierarchy(path: Path, wnids: list[str], nodes: dict[str, tuple[str, str | None]]) -> Path:
    nodes_json = {node: {"name": name, "parent": parent} for node, (name, parent) in nodes.items()}
    path.write_text(json.dumps({"about": "test", "wnids": wnids, "nodes": nodes_json}), encoding="utf-8")
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> hier.ClassHierarchy:
    return hier.load_hierarchy(write_hierarchy(tmp_path / "tiny.json", TINY_WNIDS, TINY_NODES))


@pytest.fixture(scope="module")
def imagenet() -> hier.ClassHierarchy:
    return hier.load_hierarchy(HIERARCHY)


# --------------------------------------------------------------------------------------------
# ClassHierarchy on the hand-built tree
# --------------------------------------------------------------------------------------------


def test_tiny_ancestors_and_is_a(tiny: hier.ClassHierarchy) -> None:
    assert tiny.num_classes == 7
    assert tiny.ancestors(CHI) == ["Chihuahua", "toy dog", "dog", "animal", "entity"]
    assert tiny.ancestor_ids(HUSKY) == ["n_husky", "n_dog", "n_animal", "n_root"]
    assert tiny.ancestors(WIDGET) == ["widget", "entity"]
    assert tiny.class_name(TABBY) == "tabby"
    assert tiny.is_a(CHI, "dog") and tiny.is_a(CHI, "Chihuahua") and tiny.is_a(CHI, "n_toy")
    assert tiny.is_a(HUSKY, "dog") and not tiny.is_a(HUSKY, "toy dog")
    assert not tiny.is_a(TABBY, "dog") and tiny.is_a(TABBY, "animal")
    assert tiny.is_a(CAB, "car") and tiny.is_a(FREIGHT, "car")  # a name selects every node of that name
    assert tiny.is_a(CAB, "n_car1") and not tiny.is_a(FREIGHT, "n_car1")
    assert tiny.is_a(torch.tensor(0), "dog")  # 0-d integer tensors are accepted as class indices


def test_tiny_bad_arguments(tiny: hier.ClassHierarchy) -> None:
    for bad, error in ((7, ValueError), (-1, ValueError), (True, TypeError), (1.0, TypeError), ("0", TypeError)):
        with pytest.raises(error, match=r"class_index must be an int in \[0, 6\]"):
            tiny.ancestors(bad)
    with pytest.raises(ValueError, match="dgo"):
        tiny.is_a(CHI, "dgo")
    with pytest.raises(ValueError, match="name"):
        tiny.is_a(CHI, 3)


def test_load_hierarchy_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path"):
        hier.load_hierarchy(tmp_path / "missing.json")
    (tmp_path / "garbage.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="path"):
        hier.load_hierarchy(tmp_path / "garbage.json")
    (tmp_path / "no_nodes.json").write_text('{"wnids": ["a"]}', encoding="utf-8")
    with pytest.raises(ValueError, match="path"):
        hier.load_hierarchy(tmp_path / "no_nodes.json")
    missing_parent = {"a": ("a", "b")}
    with pytest.raises(ValueError, match="missing"):
        hier.load_hierarchy(write_hierarchy(tmp_path / "orphan.json", ["a"], missing_parent))
    cycle = {"a": ("a", "b"), "b": ("b", "a")}
    with pytest.raises(ValueError, match="cycle"):
        hier.load_hierarchy(write_hierarchy(tmp_path / "cycle.json", ["a"], cycle))
    with pytest.raises(ValueError, match="unique"):
        hier.load_hierarchy(write_hierarchy(tmp_path / "dup.json", ["a", "a"], {"a": ("a", None)}))


def test_load_hierarchy_default_path(tmp_path: Path, tiny: hier.ClassHierarchy, monkeypatch) -> None:
    monkeypatch.setattr(hier, "DEFAULT_OUTPUT", write_hierarchy(tmp_path / "default.json", TINY_WNIDS, TINY_NODES))
    assert hier.load_hierarchy() == tiny


# --------------------------------------------------------------------------------------------
# class_groups on the hand-built tree
# --------------------------------------------------------------------------------------------


def test_tiny_groups_and_singletons(tiny: hier.ClassHierarchy) -> None:
    names, group_of = hier.class_groups(tiny, ["dog", "cat"], labels={})
    assert names == ["dog", "cat", "wolf", "cab", "freight car", "widget"]
    assert group_of.dtype == torch.long and group_of.tolist() == [0, 0, 1, 2, 3, 4, 5]


def test_tiny_deepest_listed_ancestor_wins(tiny: hier.ClassHierarchy) -> None:
    # The order of the list does not matter, only the depth: the dogs go to "dog", the other animals to "animal".
    for groups in (["animal", "dog"], ["dog", "animal"]):
        names, group_of = hier.class_groups(tiny, groups, labels={})
        expected = ["dog", "dog", "animal", "animal", "cab", "freight car", "widget"]
        assert [names[g] for g in group_of.tolist()] == expected
    # A listed class is its own (deepest) group; a listed group left with no class is dropped.
    names, group_of = hier.class_groups(tiny, ["toy dog", "Chihuahua", "dog"], labels={})
    assert "toy dog" not in names
    assert [names[g] for g in group_of.tolist()[:2]] == ["Chihuahua", "dog"]


def test_tiny_names_wnids_and_labels(tiny: hier.ClassHierarchy) -> None:
    names, group_of = hier.class_groups(tiny, ["car"], labels={})
    assert group_of[CAB] == group_of[FREIGHT] and names[group_of[CAB]] == "car"  # both "car" synsets
    names, group_of = hier.class_groups(tiny, ["n_car1"], labels={"n_car1": "automobile"})
    assert names[group_of[CAB]] == "automobile" and names[group_of[FREIGHT]] == "freight car"
    names, group_of = hier.class_groups(tiny, ["n_car2"], labels={})
    assert names[group_of[FREIGHT]] == "car"  # a wnid entry without label is named after its node
    # Entries with the same label share one group.
    names, group_of = hier.class_groups(tiny, ["dog", "wolf", "cat"], labels={"dog": "canine", "wolf": "canine"})
    assert names[:2] == ["canine", "cat"]
    assert group_of[CHI] == group_of[HUSKY] == group_of[WOLF] == 0 and group_of[TABBY] == 1


def test_tiny_singleton_name_clash_gets_wnid(tiny: hier.ClassHierarchy) -> None:
    names, group_of = hier.class_groups(tiny, ["toy dog"], labels={"toy dog": "husky"})
    assert names[group_of[CHI]] == "husky"
    assert names[group_of[HUSKY]] == "husky (n_husky)"
    assert len(set(names)) == len(names)


def test_tiny_class_groups_errors(tiny: hier.ClassHierarchy) -> None:
    with pytest.raises(ValueError, match="dgo"):
        hier.class_groups(tiny, ["dog", "dgo"])
    with pytest.raises(ValueError, match="groups"):
        hier.class_groups(tiny, "dog")
    with pytest.raises(ValueError, match="groups"):
        hier.class_groups(tiny, ["dog", 3])


# --------------------------------------------------------------------------------------------
# group_probabilities and top_groups
# --------------------------------------------------------------------------------------------


def loop_group_probabilities(probabilities: torch.Tensor, group_of: list[int], num_groups: int) -> torch.Tensor:
    out = torch.zeros(probabilities.shape[0], num_groups, dtype=torch.float64)
    for b in range(probabilities.shape[0]):
        for c, g in enumerate(group_of):
            out[b, g] += float(probabilities[b, c])
    return out


def test_group_probabilities_matches_loop_and_keeps_row_sums() -> None:
    generator = torch.Generator().manual_seed(0)
    probabilities = torch.rand(5, 11, generator=generator, dtype=torch.float64)
    group_of = torch.tensor([3, 0, 0, 2, 3, 3, 1, 0, 2, 4, 3])
    out = lib.group_probabilities(probabilities, group_of, 6)  # group 5 is empty
    assert out.shape == (5, 6) and out.dtype == torch.float64
    torch.testing.assert_close(out, loop_group_probabilities(probabilities, group_of.tolist(), 6))
    torch.testing.assert_close(out.sum(dim=1), probabilities.sum(dim=1))
    assert (out[:, 5] == 0).all()
    # One image: [C] -> [G].
    torch.testing.assert_close(lib.group_probabilities(probabilities[2], group_of, 6), out[2])
    # float32 softmax rows still sum to one.
    softmax = torch.softmax(torch.randn(3, 11, generator=generator), dim=1)
    out32 = lib.group_probabilities(softmax, group_of.int(), 5)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.sum(dim=1), torch.ones(3))


def test_group_probabilities_errors() -> None:
    probabilities = torch.full((2, 4), 0.25)
    group_of = torch.tensor([0, 1, 1, 2])
    with pytest.raises(ValueError, match="probabilities"):
        lib.group_probabilities(torch.ones(2, 4, dtype=torch.long), group_of, 3)
    with pytest.raises(ValueError, match="probabilities"):
        lib.group_probabilities(torch.ones(1, 2, 4), group_of, 3)
    with pytest.raises(ValueError, match="group_of"):
        lib.group_probabilities(probabilities, group_of[:3], 3)
    with pytest.raises(ValueError, match="group_of"):
        lib.group_probabilities(probabilities, group_of.float(), 3)
    with pytest.raises(ValueError, match="group_of"):
        lib.group_probabilities(probabilities, group_of, 2)  # value 2 is out of range
    with pytest.raises(ValueError, match="group_of"):
        lib.group_probabilities(probabilities, torch.tensor([0, -1, 1, 2]), 3)
    for bad, error in ((0, ValueError), (True, TypeError), (3.0, TypeError)):
        with pytest.raises(error, match="num_groups must be an int >= 1"):
            lib.group_probabilities(probabilities, group_of, bad)


def test_top_groups_hand_built() -> None:
    # Dyadic values: every sum is exact, so the tie between "a" and "c" (0.375 each) is a real tie.
    probabilities = torch.tensor([0.125, 0.25, 0.0625, 0.1875, 0.25, 0.125])
    group_of = torch.tensor([0, 0, 1, 1, 2, 2])
    names = ["a", "b", "c", "empty"]
    result = lib.top_groups(probabilities, group_of, names, 3)
    assert result == [("a", 0.375, [1, 0]), ("c", 0.375, [4, 5]), ("b", 0.25, [3, 2])]
    assert lib.top_groups(probabilities, group_of, names, 1) == [("a", 0.375, [1, 0])]
    with pytest.raises(ValueError, match="k"):
        lib.top_groups(probabilities, group_of, names, 4)  # only three groups have classes
    for bad, error in ((0, ValueError), (True, TypeError), (1.5, TypeError)):
        with pytest.raises(error, match=r"k must be an int in \[1, 3\]"):
            lib.top_groups(probabilities, group_of, names, bad)
    with pytest.raises(ValueError, match="probabilities"):
        lib.top_groups(probabilities[None], group_of, names, 1)
    with pytest.raises(ValueError, match="group_names"):
        lib.top_groups(probabilities, group_of, "abc", 1)
    with pytest.raises(ValueError, match="group_of"):
        lib.top_groups(probabilities, group_of, names[:2], 1)  # group 2 has no name


def test_top_groups_on_tiny_hierarchy(tiny: hier.ClassHierarchy) -> None:
    names, group_of = hier.class_groups(tiny, ["dog", "car"], labels={})
    probabilities = torch.tensor([0.25, 0.125, 0.3125, 0.0625, 0.125, 0.0625, 0.0625])
    top = lib.top_groups(probabilities, group_of, names, 2)
    assert top == [("dog", 0.375, [CHI, HUSKY]), ("tabby", 0.3125, [TABBY])]


# --------------------------------------------------------------------------------------------
# The shipped ImageNet-1k hierarchy and DEFAULT_GROUPS
# --------------------------------------------------------------------------------------------


def test_imagenet_file_is_small_and_in_torchvision_order(imagenet: hier.ClassHierarchy) -> None:
    assert HIERARCHY.stat().st_size < 150_000
    wnids = imagenet.wnids
    assert len(wnids) == 1000 and list(wnids) == sorted(set(wnids))
    assert (wnids[0], wnids[151], wnids[281]) == ("n01440764", "n02085620", "n02123045")
    records = json.loads((ROOT / "tests" / "data" / "imagenet_val" / "annotations.json").read_text(encoding="utf-8"))
    for record in records:
        assert wnids[record["class_index"]] == record["wnid"], record["file"]
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in json.loads(HIERARCHY.read_text())["licence"]


def test_imagenet_is_a(imagenet: hier.ClassHierarchy) -> None:
    assert imagenet.ancestors(151)[:3] == ["Chihuahua", "toy dog", "dog"]
    assert imagenet.ancestors(151)[-1] == "entity"
    assert imagenet.is_a(151, "dog") and imagenet.is_a(151, "n02084071")
    assert imagenet.is_a(281, "domestic cat") and imagenet.is_a(281, "cat") and imagenet.class_name(281) == "tabby"
    assert not imagenet.is_a(151, "cat") and not imagenet.is_a(281, "dog")
    assert not imagenet.is_a(269, "dog") and imagenet.is_a(269, "wolf")  # timber wolf
    assert all(imagenet.is_a(i, "dog") for i in range(151, 269))
    assert not any(imagenet.is_a(i, "dog") for i in [*range(151), *range(269, 1000)])


def test_default_groups(imagenet: hier.ClassHierarchy) -> None:
    names, group_of = hier.class_groups(imagenet)
    assert group_of.shape == (1000,) and group_of.dtype == torch.long
    assert int(group_of.max()) == len(names) - 1 and len(set(names)) == len(names)
    assert torch.bincount(group_of).min() >= 1  # no empty group

    def members(label: str) -> list[int]:
        return torch.nonzero(group_of == names.index(label)).flatten().tolist()

    assert members("dog") == list(range(151, 269))  # all 118 breeds, no wolf, fox or hyena
    assert members("cat") == list(range(281, 286))
    assert members("big cat") == list(range(288, 294))
    assert members("bird") == [*range(7, 25), *range(80, 101), *range(127, 147)]
    assert group_of[151] == group_of[268] and group_of[151] != group_of[281]
    for index, label in [(158, "dog"), (171, "dog"), (243, "dog"), (242, "dog"), (282, "cat"), (269, "wolf")]:
        assert names[group_of[index]] == label
    assert names[group_of[276]] == "hyena"  # no listed ancestor: a group of its own
    assert names[group_of[817]] == "car" and names[group_of[565]] == "train"  # sports car vs freight car
    assert names[group_of[656]] == "van" and names[group_of[403]] == "boat"  # minivan, aircraft carrier


def test_default_groups_probabilities(imagenet: hier.ClassHierarchy) -> None:
    names, group_of = hier.class_groups(imagenet)
    probabilities = torch.full((1000,), 0.05 / 996, dtype=torch.float64)
    probabilities[[151, 158, 171, 281]] = torch.tensor([0.5, 0.2, 0.1, 0.15], dtype=torch.float64)
    grouped = lib.group_probabilities(probabilities[None], group_of, len(names))
    torch.testing.assert_close(grouped.sum(dim=1), torch.ones(1, dtype=torch.float64))
    top = lib.top_groups(probabilities, group_of, names, 3)
    assert [name for name, _, _ in top[:2]] == ["dog", "cat"]
    assert top[0][1] == pytest.approx(0.8 + 115 * 0.05 / 996)
    assert top[0][2][:3] == [151, 158, 171] and sorted(top[0][2]) == list(range(151, 269))
    assert top[1][2][0] == 281


def test_shipped_groups_are_the_default_groups_of_the_shipped_hierarchy(imagenet: hier.ClassHierarchy) -> None:
    groups = lib.imagenet_groups()
    names, group_of = hier.class_groups(imagenet)
    assert groups.names == tuple(names) and torch.equal(groups.group_of, group_of)
    assert groups.group_of.dtype == torch.long and len(names) == 570 and names[:2] == ["dog", "wolf"]
    script = ROOT / ".ci" / "make_imagenet_hierarchy.py"
    result = subprocess.run([sys.executable, str(script), "--groups-only", "--check"], **RUN_SCRIPT)
    assert result.returncode == 0, result.stderr


def test_imagenet_groups_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path: no groups file"):
        lib.imagenet_groups(tmp_path / "missing.json")
    (tmp_path / "garbage.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="path"):
        lib.imagenet_groups(tmp_path / "garbage.json")
    (tmp_path / "short.json").write_text('{"names": ["a"], "group_of": [0, 0]}', encoding="utf-8")
    with pytest.raises(ValueError, match="group_of must have shape"):
        lib.imagenet_groups(tmp_path / "short.json")
    (tmp_path / "range.json").write_text(json.dumps({"names": ["a"], "group_of": [0] * 999 + [1]}), encoding="utf-8")
    with pytest.raises(ValueError, match="group_of values"):
        lib.imagenet_groups(tmp_path / "range.json")
    hand_made = lib.ClassGroups(("even", "odd"), torch.arange(1000) % 2)  # a user's own groups
    probabilities = torch.full((1000,), 2.0**-10, dtype=torch.float64)  # dyadic: the sums are exact
    probabilities[7] = 2.0**-9  # odd wins, and class 7 is its best member
    top = hand_made.top(probabilities, 2)
    assert top[0] == ("odd", 501 * 2.0**-10, [7, *range(1, 7, 2), *range(9, 1000, 2)])
    assert top[1] == ("even", 500 * 2.0**-10, list(range(0, 1000, 2)))


@pytest.mark.skipif(not DATA_NOUN.exists(), reason="WordNet 3.0 data.noun not installed (apt-get install wordnet-base)")
def test_hierarchy_file_is_reproducible() -> None:
    script = ROOT / ".ci" / "make_imagenet_hierarchy.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check", "--data-noun", str(DATA_NOUN)], **RUN_SCRIPT
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------
# detect / segment with groups: distinct objects
# --------------------------------------------------------------------------------------------


def test_detect_with_groups_sums_the_dog_breeds(lite, chihuahua):
    groups = lib.imagenet_groups()
    detections = lib.detect(lite, chihuahua, topk=3, groups=groups, input_sizes=224, flip=False)
    with torch.no_grad():
        probabilities = lite.model(lite.preprocess(chihuahua, 224)).softmax(dim=1)[0]
    dog = float(probabilities[151:269].sum())  # the 118 breeds, summed independently of the group code
    first = detections[0]
    assert first.label == "dog" and first.class_index == 151  # its map is the best member's: Chihuahua
    assert abs(first.score - dog) < 1e-5 and dog > 0.8
    names = [d.label for d in detections]
    assert len(set(names)) == 3  # three distinct groups, no second dog entry
    plain = lib.detect(lite, chihuahua, topk=1, input_sizes=224, flip=False)[0]
    assert first.box == plain.box  # same map, same box


def test_segment_with_groups_labels_distinct_objects(lite):
    groups = lib.imagenet_groups()
    photo = lib.load_image(DATA / "dog_and_cat.png")
    seg = lib.segment(lite, photo, topk=3, groups=groups, input_sizes=224, flip=False)
    labels = [label for _, label, _ in seg.classes]
    assert labels[:2] == ["dog", "cat"]
    dog, cat = seg.classes[0][0], seg.classes[1][0]
    ys_dog, _ = np.nonzero(seg.label_map == dog)
    ys_cat, _ = np.nonzero(seg.label_map == cat)
    assert len(ys_dog) and len(ys_cat) and ys_dog.mean() < ys_cat.mean()  # the dog above, the cat below


def test_groups_are_chosen_on_the_224_view_whatever_the_map_view(lite):
    """With a 320 detail view, detect and segment still rank the groups by the probabilities of one plain 224 view
    (summed here per group independently of the group code); the maps come from the 320 view."""
    groups = lib.imagenet_groups()
    photo = lib.load_image(DATA / "dog_and_cat.png")
    with torch.no_grad():
        probabilities = lite.model(lite.preprocess(photo, 224)).softmax(dim=1)[0].double().numpy()
    group_of = groups.group_of.numpy()
    sums = np.zeros(len(groups.names))
    np.add.at(sums, group_of, probabilities)
    top = np.argsort(-sums, kind="stable")[:3]
    best = [int(np.flatnonzero(group_of == g)[np.argmax(probabilities[group_of == g])]) for g in top]
    detections = lib.detect(lite, photo, topk=3, groups=groups, input_sizes=320, flip=False)
    assert [d.class_index for d in detections] == best
    assert [d.label for d in detections] == [groups.names[g] for g in top]
    np.testing.assert_allclose([d.score for d in detections], sums[top], atol=1e-5)
    assert all(tuple(d.cam.shape) == (20, 20) for d in detections)
    seg = lib.segment(lite, photo, topk=3, groups=groups, input_sizes=320, flip=False, refine=False)
    assert [(c, label) for c, label, _ in seg.classes] == [(d.class_index, d.label) for d in detections]
    np.testing.assert_allclose([s for _, _, s in seg.classes], sums[top], atol=1e-5)
    assert tuple(seg.cams_low.shape[-2:]) == (20, 20)
