"""Write tests/data/imagenet_hierarchy.json: the WordNet 3.0 hypernym tree above the 1000 ImageNet-1k classes.

Usage (from the repository root)::

    .venv/bin/python .ci/make_imagenet_hierarchy.py [--data-noun PATH] [--wnids PATH] [--output PATH] [--check]

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

``--check`` rebuilds the file in memory and exits with status 1 if the committed file differs (for CI).

Sanity checks run every time: 1000 unique, sorted wnids; index 0 = tench, 151 = Chihuahua, 281 = tabby; every
``(class_index, wnid)`` pair of ``tests/data/imagenet_val/annotations.json`` (if present) agrees.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_NOUN = Path("/usr/share/wordnet/data.noun")
DEFAULT_OUTPUT = ROOT / "tests" / "data" / "imagenet_hierarchy.json"
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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-noun", type=Path, default=DEFAULT_DATA_NOUN, help="WordNet 3.0 data.noun")
    parser.add_argument("--wnids", type=Path, default=None, help="text file with the 1000 wnids in class order")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    parser.add_argument("--check", action="store_true", help="only compare with the existing output file")
    args = parser.parse_args(argv)

    synsets = parse_data_noun(args.data_noun)
    wnids, source = read_wnids(args.wnids, args.output)
    check_wnids(wnids, synsets)
    text = render(wnids, build(wnids, synsets))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: re-run {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}: {len(wnids)} classes, {len(text)} bytes (wnids from {source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
