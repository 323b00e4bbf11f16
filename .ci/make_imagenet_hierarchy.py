"""Write tests/data/imagenet_hierarchy.json, the WordNet 3.0 hypernym tree above the 1000 ImageNet-1k classes, and
the default class groups over it into helpers.py (``IMAGENET_GROUP_MEMBERS``, what ``helpers.imagenet_groups()``
returns): the library ships them in its one module and reads no file at run time.

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python .ci/make_imagenet_hierarchy.py [--data-noun PATH] [--wnids PATH] [--check]
    .venv/bin/python .ci/make_imagenet_hierarchy.py --groups-only [--check]   # no WordNet needed

User-defined groups: ``load_hierarchy`` and ``class_groups`` below, e.g.
``names, group_of = class_groups(load_hierarchy(), ["dog", "cat"]); helpers.ClassGroups(tuple(names), group_of)``.

Inputs
------
* ``--data-noun``: WordNet 3.0's ``data.noun`` (Debian: ``apt-get install wordnet-base`` puts it at
  ``/usr/share/wordnet/data.noun``, the default).
* ``--wnids``: a text file with the 1000 ImageNet-1k wnids, one per line, in class-index order (the sorted order of
  the ILSVRC2012 class folders, which is torchvision's class order). timm ships one as
  ``timm/data/_info/imagenet_synsets.txt`` (Apache-2.0). Without ``--wnids`` the script reuses the ``wnids`` of the
  existing output file, so a re-run needs nothing but ``data.noun``; failing that it tries an installed ``timm``.

Output
------
A small JSON file (no NLTK or network needed at run time)::

    {"about": "...", "licence": "<WordNet 3.0 licence>", "wnids": [1000 wnids in class order],
     "nodes": {"n02085620": {"name": "Chihuahua", "parent": "n02085374"}, ..., "n00001740": {"name": "entity",
     "parent": null}}}

``nodes`` holds only the synsets on the hypernym paths of the 1000 classes. Every synset keeps only its FIRST
hypernym pointer (``@``, or ``@i`` for an instance when it has no ``@``), so the result is a tree rooted at
``entity``. A node's id is its wnid (``"n"`` + 8-digit offset); its name is the synset's first lemma with underscores
turned into spaces (so names are not unique: two synsets may share one).

``--check`` rebuilds the files in memory and exits with status 1 if a committed file differs (for CI).
``--groups-only`` (re)makes only the groups block of helpers.py, from the committed hierarchy.

Sanity checks run every time: 1000 unique, sorted wnids; index 0 = tench, 151 = Chihuahua, 281 = tabby; every
``(class_index, wnid)`` pair of ``tests/data/imagenet_val/annotations.json`` (if present) agrees.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import torch
from torch import Tensor

from helpers import check_int  # run from the repository root with PYTHONPATH=. (or by pytest)

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_DATA_NOUN = Path("/usr/share/wordnet/data.noun")
DEFAULT_OUTPUT = ROOT / "tests" / "data" / "imagenet_hierarchy.json"
GROUPS_OUTPUT = ROOT / "helpers.py"
#: The lines that enclose the default groups in helpers.py (this script rewrites what lies between them).
GROUPS_BEGIN = "# ---- The default ImageNet-1k groups: written by .ci/make_imagenet_hierarchy.py, not by hand ----"
GROUPS_END = "}  # ---- end of the default groups ----"
ANNOTATIONS = (ROOT / "tests" / "data" / "imagenet_val" / "annotations.json",)
KNOWN = {0: "n01440764", 151: "n02085620", 281: "n02123045"}  # tench, Chihuahua, tabby

WORDNET_LICENCE = """\
This software and database is being provided to you, the LICENSEE, by Princeton University under the following \
license. By obtaining, using and/or copying this software and database, you agree that you have read, understood, \
and will comply with these terms and conditions.: Permission to use, copy, modify and distribute this software and \
database and its documentation for any purpose and without fee or royalty is hereby granted, provided that you agree \
to comply with the following copyright notice and statements, including the disclaimer, and that the same appear on \
ALL copies of the software, database and documentation, including modifications that you make for internal use or \
for distribution. WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. THIS SOFTWARE AND \
DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. \
BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF \
MERCHANT-ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE, DATABASE OR \
DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS. The name of \
Princeton University or Princeton may not be used in advertising or publicity pertaining to distribution of the \
software and/or database. Title to copyright in this software, database and any associated documentation shall at \
all times remain with Princeton University and LICENSEE agrees to preserve same."""

ABOUT = (
    "WordNet 3.0 noun hypernym tree above the 1000 ImageNet-1k (ILSVRC2012) classes. 'wnids' lists the classes in "
    "torchvision's class-index order (sorted wnids; list taken from timm's imagenet_synsets.txt, Apache-2.0, and "
    "checked against the ImageNet validation annotations). 'nodes' maps each wnid ('n' + WordNet 3.0 noun offset) on "
    "the classes' hypernym paths to its first lemma (underscores as spaces) and the wnid of its FIRST hypernym "
    "('@', else '@i'); the root 'entity' has parent null. Derived from WordNet 3.0 data.noun (Debian package "
    "wordnet-base) by .ci/make_imagenet_hierarchy.py. WordNet 3.0 Copyright 2006 by Princeton University, used under "
    "the WordNet 3.0 licence reproduced in 'licence'."
)


# Groups of near-synonym classes ("distinct objects"), see class_groups: WordNet synsets by name (every node of that
# name) or by wnid where the name is ambiguous. The choices are explained in evaluation/results/choices.md.
DEFAULT_GROUPS: tuple[str, ...] = (
    # mammals
    "dog", "wolf", "fox", "wild dog", "domestic cat", "wildcat", "big cat", "bear", "monkey", "ape", "lemur", "bovid",
    "antelope", "swine", "elephant", "tusker", "leporid", "whale",
    # other animals
    "bird", "game bird", "fish", "shark", "snake", "lizard", "turtle", "frog", "salamander", "crocodilian reptile",
    "butterfly", "beetle", "spider", "crab", "lobster", "fungus", "mushroom",
    # vehicles: n02958343 car (automobile), n02959942 railway car, n04530566 vessel (watercraft)
    "n02958343", "van", "truck", "bus", "train", "locomotive", "n02959942", "bicycle", "n04530566", "aircraft",
    # other objects: n03380867 footwear (shoes), n02778669 ball (game equipment)
    "musical instrument", "personal computer", "clock", "firearm", "bottle", "chair", "hat", "n03380867", "necktie",
    "swimsuit", "coat", "skirt", "sweater", "shop", "fence", "n02778669", "telephone", "camera", "pen", "bridge",
    "squash",
)

# Display names of the DEFAULT_GROUPS entries whose WordNet name is not the everyday one.
GROUP_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "domestic cat": "cat", "wildcat": "wild cat", "swine": "pig", "tusker": "elephant", "leporid": "rabbit",
        "game bird": "bird", "crocodilian reptile": "crocodile", "fungus": "mushroom", "n02958343": "car",
        "locomotive": "train", "n02959942": "train", "n04530566": "boat", "personal computer": "computer",
        "firearm": "gun", "n03380867": "shoe", "necktie": "tie", "n02778669": "ball",
    }
)


def parse_data_noun(path: Path) -> dict[str, tuple[str, str | None]]:
    """Map every noun synset's wnid to (first lemma with spaces, wnid of its first hypernym or None)."""
    synsets: dict[str, tuple[str, str | None]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("  "):  # licence header
                continue
            fields = line.split(" | ", 1)[0].split()
            offset, ss_type, word_count = fields[0], fields[2], int(fields[3], 16)
            if ss_type != "n":
                raise ValueError(f"{path}: synset {offset} has type {ss_type!r}, expected a noun data file")
            lemma = fields[4].replace("_", " ")
            position = 4 + 2 * word_count
            pointer_count = int(fields[position])
            hypernym = instance_hypernym = None
            for i in range(pointer_count):
                symbol, target, pos = fields[position + 1 + 4 * i : position + 4 + 4 * i]
                if pos != "n":
                    continue
                if symbol == "@" and hypernym is None:
                    hypernym = "n" + target
                elif symbol == "@i" and instance_hypernym is None:
                    instance_hypernym = "n" + target
            synsets["n" + offset] = (lemma, hypernym or instance_hypernym)
    if "n00001740" not in synsets:
        raise ValueError(f"{path} does not look like WordNet 3.0 data.noun (no 'entity' synset 00001740)")
    return synsets


def read_wnids(wnids_path: Path | None, output: Path) -> tuple[list[str], str]:
    """Return the 1000 wnids in class order and a description of where they came from."""
    if wnids_path is not None:
        return wnids_path.read_text(encoding="utf-8").split(), str(wnids_path)
    if output.exists():
        return json.loads(output.read_text(encoding="utf-8"))["wnids"], str(output)
    try:
        from importlib.resources import files

        source = files("timm.data") / "_info" / "imagenet_synsets.txt"
        return source.read_text(encoding="utf-8").split(), "timm/data/_info/imagenet_synsets.txt"
    except (ImportError, FileNotFoundError) as error:
        raise SystemExit(
            "no wnid list: pass --wnids PATH (e.g. timm/data/_info/imagenet_synsets.txt from "
            "`pip download timm --no-deps`)"
        ) from error


def check_wnids(wnids: list[str], synsets: dict[str, tuple[str, str | None]]) -> None:
    """Raise ValueError unless ``wnids`` is the sorted list of 1000 ImageNet-1k classes, all present in WordNet."""
    if len(wnids) != 1000 or len(set(wnids)) != 1000:
        raise ValueError(f"expected 1000 unique wnids, got {len(wnids)} ({len(set(wnids))} unique)")
    if wnids != sorted(wnids):
        raise ValueError("the wnids are not sorted: torchvision's class order is the sorted order")
    for index, wnid in KNOWN.items():
        if wnids[index] != wnid:
            raise ValueError(f"class {index} should be {wnid}, got {wnids[index]}")
    missing = [wnid for wnid in wnids if wnid not in synsets]
    if missing:
        raise ValueError(f"{len(missing)} wnids are not WordNet 3.0 noun synsets, e.g. {missing[:5]}")
    for path in ANNOTATIONS:
        if not path.exists():
            continue
        for record in json.loads(path.read_text(encoding="utf-8")):
            if wnids[record["class_index"]] != record["wnid"]:
                raise ValueError(f"{path}: class {record['class_index']} is {record['wnid']}, list says otherwise")


def build(wnids: list[str], synsets: dict[str, tuple[str, str | None]]) -> dict[str, dict[str, str | None]]:
    """Nodes on the first-hypernym paths of ``wnids``: {wnid: {"name": lemma, "parent": wnid or None}}."""
    nodes: dict[str, dict[str, str | None]] = {}
    for wnid in wnids:
        node: str | None = wnid
        while node is not None and node not in nodes:
            name, parent = synsets[node]
            nodes[node] = {"name": name, "parent": parent}
            node = parent
    roots = [wnid for wnid, node in nodes.items() if node["parent"] is None]
    if roots != ["n00001740"]:
        raise ValueError(f"expected the single root 'entity' (n00001740), got {roots}")
    return dict(sorted(nodes.items()))


def render(wnids: list[str], nodes: dict[str, dict[str, str | None]]) -> str:
    """Compact JSON text, one node per line (diff-friendly)."""
    dump = json.dumps
    lines = ["{", f'"about": {dump(ABOUT)},', f'"licence": {dump(WORDNET_LICENCE)},', '"wnids": [']
    rows = [",".join(dump(w) for w in wnids[i : i + 10]) for i in range(0, len(wnids), 10)]
    lines.append(",\n".join(rows))
    lines.append("],")
    lines.append('"nodes": {')
    lines.append(",\n".join(f"{dump(k)}:{dump(v, separators=(',', ':'))}" for k, v in nodes.items()))
    lines.append("}")
    lines.append("}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ClassHierarchy:
    """A tree of WordNet synsets above the classes of a classifier. ``wnids``: the classes' node ids in
    class-index order, length C; ``names``: node id -> name (the synset's first lemma, e.g. "n02084071" -> "dog";
    not unique); ``parents``: node id -> parent node id, None for the root (every chain ends at a root)."""

    wnids: tuple[str, ...]
    names: Mapping[str, str]
    parents: Mapping[str, str | None]

    def __post_init__(self) -> None:
        if not self.wnids or len(set(self.wnids)) != len(self.wnids):
            raise ValueError("wnids must be non-empty and unique")
        if set(self.names) != set(self.parents):
            raise ValueError("names and parents must have the same node ids")
        for index in range(self.num_classes):
            self.ancestor_ids(index)  # raises for a missing node or a cycle

    @property
    def num_classes(self) -> int:
        """C, the number of classes."""
        return len(self.wnids)

    def ancestor_ids(self, class_index: int) -> list[str]:
        """Node ids from the class itself up to the root, e.g. ["n02085620", "n02085374", ..., "n00001740"]."""
        wnid = self.wnids[check_int(class_index, "class_index", 0, self.num_classes - 1)]
        path: list[str] = []
        node: str | None = wnid
        while node is not None:
            if node not in self.parents:
                raise ValueError(f"node {node!r} (above class {wnid!r}) is missing from the hierarchy's nodes")
            if node in path:
                raise ValueError(f"the parents of class {wnid!r} form a cycle")
            path.append(node)
            node = self.parents[node]
        return path

    def ancestors(self, class_index: int) -> list[str]:
        """Names from the class itself up to the root, e.g. ["Chihuahua", "toy dog", "dog", ..., "entity"]."""
        return [self.names[node] for node in self.ancestor_ids(class_index)]

    def class_name(self, class_index: int) -> str:
        """The class's WordNet name (its synset's first lemma; may differ from torchvision's category name)."""
        return self.ancestors(class_index)[0]

    def is_a(self, class_index: int, name: str) -> bool:
        """Whether the class or one of its ancestors is called ``name`` (a node name such as "dog", or a wnid);
        ValueError if ``name`` is no node of the hierarchy (a typo would otherwise just answer False)."""
        self._check_selector(name, "name")
        return any(node == name or self.names[node] == name for node in self.ancestor_ids(class_index))

    def _check_selector(self, name: str, argument: str) -> None:
        if not isinstance(name, str):
            raise ValueError(f"{argument} must be a str (a node name or wnid), got {type(name).__name__}")
        if name not in self.names and name not in set(self.names.values()):
            raise ValueError(f"{argument}={name!r} is neither a node name nor a wnid of the hierarchy")


def load_hierarchy(path: str | os.PathLike[str] | None = None) -> ClassHierarchy:
    """Read the JSON written by .ci/make_imagenet_hierarchy.py (default: tests/data/imagenet_hierarchy.json):
    {"wnids": [C class ids in class order], "nodes": {id: {"name": str, "parent": id or null}}}."""
    path = Path(DEFAULT_OUTPUT if path is None else path)
    try:
        return hierarchy_of(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ValueError(f"path: no hierarchy file at {path} (make it with .ci/make_imagenet_hierarchy.py)") from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"path: {path} is not a hierarchy file ({type(error).__name__}: {error})") from None


def hierarchy_of(data: dict) -> ClassHierarchy:
    """The :class:`ClassHierarchy` of a hierarchy file's parsed JSON."""
    nodes = data["nodes"]
    names = {node: str(fields["name"]) for node, fields in nodes.items()}
    parents = {node: fields["parent"] for node, fields in nodes.items()}
    return ClassHierarchy(tuple(data["wnids"]), MappingProxyType(names), MappingProxyType(parents))


def class_groups(
    hierarchy: ClassHierarchy, groups: Sequence[str] = DEFAULT_GROUPS, labels: Mapping[str, str] = GROUP_LABELS
) -> tuple[list[str], Tensor]:
    """Assign every class to the group of its deepest ancestor (itself included) that ``groups`` lists
    (node names or wnids, see DEFAULT_GROUPS); ``labels``: display names, entries sharing a label share a group.

    -> (group_names, group_of): the G group names, first the labels of the listed groups that received at least one
    class (in the order of ``groups``), then one group per remaining class, named after the class (with its wnid
    appended if that name is taken); and a LongTensor [C] with each class's group index in [0, G).
    """
    if isinstance(groups, str) or not isinstance(groups, Sequence):
        raise ValueError(f"groups must be a sequence of node names or wnids, got {type(groups).__name__}")
    for entry in groups:
        hierarchy._check_selector(entry, "groups entry")
    entry_labels = [labels.get(entry, hierarchy.names.get(entry, entry)) for entry in groups]
    label_of_node: dict[str, str] = {}
    for entry, label in zip(groups, entry_labels, strict=True):
        for node, name in hierarchy.names.items():
            if entry in (node, name):
                label_of_node.setdefault(node, label)
    class_label = [
        next((label_of_node[node] for node in hierarchy.ancestor_ids(index) if node in label_of_node), None)
        for index in range(hierarchy.num_classes)
    ]
    used = set(class_label)
    names = [label for label in dict.fromkeys(entry_labels) if label in used]
    position = {label: i for i, label in enumerate(names)}
    group_of = torch.empty(hierarchy.num_classes, dtype=torch.long)
    for index, label in enumerate(class_label):
        if label is None:  # no listed ancestor: a group of its own
            label = hierarchy.class_name(index)
            if label in position:
                label = f"{label} ({hierarchy.wnids[index]})"
            position[label] = len(names)
            names.append(label)
        group_of[index] = position[label]
    return names, group_of


def _ranges(indices: Sequence[int]) -> str:
    """Sorted class indices as text: ``[7, 8, 9, 80]`` -> ``"7-9 80"``."""
    parts: list[str] = []
    for index in indices:
        if parts and parts[-1].split("-")[-1] == str(index - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{index}"
        else:
            parts.append(str(index))
    return " ".join(parts)


def render_groups(hierarchy: ClassHierarchy) -> str:
    """The default groups (DEFAULT_GROUPS over ``hierarchy``) as the Python block of helpers.py that
    ``helpers.imagenet_groups()`` reads: ``IMAGENET_GROUP_MEMBERS = {name: "a-b c ..."}``, the listed groups in
    order; every other class is a group of its own there."""
    names, group_of = class_groups(hierarchy)
    labels = [GROUP_LABELS.get(entry, hierarchy.names.get(entry, entry)) for entry in DEFAULT_GROUPS]
    listed = [label for label in dict.fromkeys(labels) if label in names]
    items = []
    for label in listed:
        text = _ranges(torch.nonzero(group_of == names.index(label)).flatten().tolist())
        while len(text) > 80:  # long member lists as implicitly joined strings
            cut = text.rindex(" ", 0, 80) + 1
            items.append(f'"{label}": "{text[:cut]}"' if not items or not items[-1].startswith(f'"{label}"')
                         else f'"{text[:cut]}"')
            label, text = None, text[cut:]
        items.append(f'"{label}": "{text}",' if label else f'"{text}",')
    lines, line = [], "   "
    for item in items:
        if len(line) + len(item) + 1 > 118 or not item.endswith(","):
            lines.append(line)
            line = "   "
        line += f" {item}"
        if not item.endswith(","):
            lines.append(line)
            line = "       "
    lines.append(line)
    body = "\n".join(row for row in lines if row.strip())
    return f"{GROUPS_BEGIN}\nIMAGENET_GROUP_MEMBERS: dict[str, str] = {{\n{body}\n{GROUPS_END}\n"


def write_groups_or_check(path: Path, block: str, check: bool) -> bool:
    """Replace the block between GROUPS_BEGIN and GROUPS_END in ``path`` (helpers.py), or with ``check`` only
    compare; False when a checked block is out of date."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(GROUPS_BEGIN), text.index(GROUPS_END)
    new = text[:start] + block + text[end + len(GROUPS_END) + 1 :]
    if check:
        if new != text:
            print(f"the default groups in {path.name} are out of date: re-run {Path(__file__).name}", file=sys.stderr)
            return False
        print(f"the default groups in {path.name} are up to date")
        return True
    path.write_text(new, encoding="utf-8")
    print(f"wrote the default groups into {path.name}: {len(block)} characters")
    return True


def write_or_check(path: Path, text: str, check: bool) -> bool:
    """Write ``text`` to ``path``, or with ``check`` only compare; False when a checked file is out of date."""
    if check:
        if (path.read_text(encoding="utf-8") if path.exists() else "") != text:
            print(f"{path} is out of date: re-run {Path(__file__).name}", file=sys.stderr)
            return False
        print(f"{path} is up to date")
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}: {len(text)} bytes")
    return True


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-noun", type=Path, default=DEFAULT_DATA_NOUN, help="WordNet 3.0 data.noun")
    parser.add_argument("--wnids", type=Path, default=None, help="text file with the 1000 wnids in class order")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    parser.add_argument("--groups", type=Path, default=GROUPS_OUTPUT, help="the module holding the default groups")
    parser.add_argument("--groups-only", action="store_true", help="only the groups, from the existing hierarchy")
    parser.add_argument("--check", action="store_true", help="only compare with the existing output files")
    args = parser.parse_args(argv)

    if args.groups_only:
        return 0 if write_groups_or_check(args.groups, render_groups(load_hierarchy(args.output)), args.check) else 1
    synsets = parse_data_noun(args.data_noun)
    wnids, source = read_wnids(args.wnids, args.output)
    check_wnids(wnids, synsets)
    text = render(wnids, build(wnids, synsets))
    ok = write_or_check(args.output, text, args.check)
    print(f"{len(wnids)} classes (wnids from {source})")
    hierarchy = load_hierarchy(args.output) if not args.check else hierarchy_of(json.loads(text))
    ok = write_groups_or_check(args.groups, render_groups(hierarchy), args.check) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
