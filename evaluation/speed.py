"""The speed benchmark's record, ``evaluation/results/benchmark.json``, the text generated from it, and the timing.

- :class:`BenchmarkRecord`: what ``python -m evaluation.benchmark`` measured (:mod:`.benchmark` makes it), with
  its models, versions, threads and machine; :meth:`BenchmarkRecord.to_json` / :meth:`BenchmarkRecord.from_json`,
  :func:`write_benchmark` (atomic) and :func:`load_benchmark`;
- :func:`speed_table_markdown`: the full speed tables of the results README; :func:`readme_speed_rows`: the two
  **Speed** rows of the README's results table. Both are pure functions of the record;
- :func:`median_seconds`: the one timing function (rows round-robin, medians), and the other measuring tools
  (forward passes and autograd calls counted, hooks and ``.grad`` left behind, resident memory, the machine).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import ROOT

#: Where the benchmark writes its record (``--out`` by default).
RECORD = ROOT / "evaluation" / "results" / "benchmark.json"
#: The README whose results table holds the **Speed** rows, and how each of those rows begins.
README = ROOT / "README.md"
SPEED_ROW_START = "| **Speed**:"
#: The record's ``kind``: what a loader keyed by kind finds in the file.
KIND = "benchmark"
#: The budget of ``detect`` top-5 and ``segment`` top-3 at the defaults, in forward passes of the published classifier.
BUDGET_X_FORWARD = 6.0

# Row keys: stable names of the rows (their titles may name the defaults of the day).
PUBLISHED = "published_forward"
FORWARD = "forward"
GRAD_CAMS = "grad_cams"
DETECT = "detect"
SEGMENT = "segment"
REFINE = "refine"
PGC = "pytorch_grad_cam"
TORCHCAM = "torchcam"


@dataclass
class ModelInfo:
    """A benchmarked model: its ``label`` in the tables, helpers' ``name`` and where its weights came from."""

    label: str
    name: str
    source: str


@dataclass
class SpeedRow:
    """One row of one model: median ``ms`` per photo over ``repeats`` timed runs, ``ratio`` = ms / ms of one
    forward pass of the same classifier as published (the budget's unit). ``forwards`` and ``autograd_calls``:
    counted in one untimed run. ``note``: why ``ms`` is None (a package not installed, a failure)."""

    key: str
    name: str
    model: str
    ms: float | None
    ratio: float | None
    repeats: int
    forwards: int | None = None
    autograd_calls: int | None = None
    note: str = ""


@dataclass
class TargetCheck:
    """A ratio of two rows' medians against its target (``"<= 6"``, ``">= 10"``)."""

    model: str
    ratio: str
    value: float | None
    target: str
    met: bool | None


@dataclass
class Throughput:
    """Photos per second of one model's ``row`` on a batch of ``photos`` photos of different sizes."""

    model: str
    row: str
    photos: int
    photos_per_s: float


@dataclass
class ThreadRow:
    """``calls`` calls of ``call`` on ONE shared model from ``workers`` Python threads (0: sequential calls in the
    main thread) -> photos per second of the whole run (calls that returned), the calls that raised (``failures``,
    the first ``error``) and the calls whose classes or boxes differ from the sequential ones (``differing``)."""

    model: str
    call: str
    workers: int
    calls: int
    seconds: float
    photos_per_s: float
    failures: int
    differing: int
    error: str = ""


@dataclass
class Memory:
    """Resident memory after call ``start`` and after call ``calls`` of ``call`` (MB, read with ``source``), the peak
    of the whole run, and what each model has left behind (hooks, ``.grad``; empty lists when clean)."""

    call: str
    calls: int
    start: int
    before_mb: float
    after_mb: float
    source: str
    peak_mb: float | None
    leftovers: dict[str, list[str]]


@dataclass
class Machine:
    """Where the numbers were measured: ``platform.platform()``, the processor, logical cores, torch's intra-op and
    inter-op threads and the GPU (None on the CPU)."""

    platform: str
    processor: str
    cpu_count: int
    threads: int
    interop_threads: int
    gpu: str | None = None


@dataclass
class BenchmarkRecord:
    """One run of ``python -m evaluation.benchmark``. ``rows``: one per (row, model); ``descriptions``: what each row
    title includes; ``settings``: the run's counts (warm-up, repeats, ``quick``); ``agreement``: per model, the mean
    correlation of each other method's top-5 maps with ``helpers.grad_cams``."""

    date: str
    seconds: float
    torch: str
    torchvision: str
    python: str
    machine: Machine
    photo: str
    models: list[ModelInfo]
    rows: list[SpeedRow]
    checks: list[TargetCheck]
    budget: float = BUDGET_X_FORWARD
    throughput: list[Throughput] = field(default_factory=list)
    threads: list[ThreadRow] = field(default_factory=list)
    memory: Memory | None = None
    agreement: dict[str, dict[str, float]] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)
    file: str = field(default="", compare=False)  # the record's file name (set by the loader)

    def to_json(self) -> dict[str, object]:
        """Plain JSON types, with ``kind`` ``"benchmark"``."""
        return {"kind": KIND, **{key: value for key, value in asdict(self).items() if key != "file"}}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> BenchmarkRecord:
        """The record of :meth:`to_json`'s dict (read by :func:`.records.parse`); a dict of another kind is an
        error."""
        from .records import parse

        if data.get("kind") != KIND:
            raise ValueError(f"not a benchmark record: kind is {data.get('kind')!r}, expected {KIND!r}")
        return parse(cls, {key: value for key, value in data.items() if key != "kind"}, "benchmark record")

    def row(self, key: str, model: str) -> SpeedRow | None:
        """The row ``key`` of the model labelled ``model``, None when the run has none."""
        return next((r for r in self.rows if r.key == key and r.model == model), None)


def write_benchmark(record: BenchmarkRecord, path: str | os.PathLike = RECORD) -> Path:
    """Write ``record`` as JSON to ``path`` the way every run record is written (:func:`.records.write_run`: indent
    1, sorted keys, atomically) -> the path."""
    from .records import write_run

    return write_run(path, record.to_json())


def write_readme_speed_rows(record: BenchmarkRecord, readme: str | os.PathLike = README) -> Path:
    """Replace the **Speed** rows of the results table in ``readme`` with :func:`readme_speed_rows` of ``record``
    -> the path. The file must hold exactly that many such rows, one after the other."""
    readme = Path(readme)
    lines = readme.read_text(encoding="utf-8").split("\n")
    found = [i for i, line in enumerate(lines) if line.startswith(SPEED_ROW_START)]
    rows = readme_speed_rows(record).split("\n")
    if len(found) != len(rows) or found != list(range(found[0], found[0] + len(rows))):
        where = f"found at lines {[i + 1 for i in found]}"
        raise ValueError(f"{readme.name} must hold {len(rows)} adjacent rows starting {SPEED_ROW_START!r}, {where}")
    lines[found[0] : found[0] + len(rows)] = rows
    readme.write_text("\n".join(lines), encoding="utf-8")
    return readme


def readme_speed_lines(text: str) -> str:
    """The **Speed** rows of a README's text, as :func:`readme_speed_rows` writes them."""
    return "\n".join(line for line in text.split("\n") if line.startswith(SPEED_ROW_START))


def load_benchmark(path: str | os.PathLike = RECORD) -> BenchmarkRecord:
    """The :class:`BenchmarkRecord` stored at ``path`` (:func:`.records.read`, the loader of every record)."""
    from .records import read

    record = read(path)
    if not isinstance(record, BenchmarkRecord):
        raise ValueError(f"{Path(path).name} is not a benchmark record: it holds a {type(record).__name__}")
    return record


def median_seconds(
    rows: Mapping[str, Callable[[], object]],
    repeats: int | Mapping[str, int],
    warmup: int | Mapping[str, int] = 1,
) -> dict[str, float]:
    """Each callable of ``rows`` timed round-robin -> {name: median seconds}: ``warmup`` untimed rounds, then
    ``repeats`` timed rounds; each round runs every row still due once, so machine noise hits all rows alike.
    ``repeats`` (>= 1) and ``warmup`` (>= 0): one count for every row, or a count per row."""
    due = {}
    for what, counts, least in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        per_row = counts if isinstance(counts, Mapping) else dict.fromkeys(rows, counts)
        if set(per_row) != set(rows):
            raise ValueError(f"{what} must give a count for each row {sorted(rows)}, got {sorted(per_row)}")
        for name, count in per_row.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < least:
                raise ValueError(f"{what} must be an int >= {least} for each row, got {count!r} for {name!r}")
        due[what] = per_row
    for r in range(max(due["warmup"].values(), default=0)):
        for name, fn in rows.items():
            if r < due["warmup"][name]:
                fn()
    seconds: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(max(due["repeats"].values(), default=0)):
        for name, fn in rows.items():
            if r < due["repeats"][name]:
                start = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in seconds.items()}


# --------------------------------------------------------------------------------------------
# Measuring tools: the process, the machine, what a call runs and leaves behind
# --------------------------------------------------------------------------------------------


def rss_mb() -> tuple[float, str]:
    """Current resident set size in MB, and how it was read."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20, "psutil"
    except ImportError:
        pass
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024, "/proc/self/status VmRSS"
    peak = peak_rss_mb()
    if peak is None:
        raise RuntimeError("resident memory cannot be read on this machine: install psutil")
    return peak, "resource ru_maxrss (peak, not current)"


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MB (``resource.getrusage``; kilobytes on Linux), None where the
    module is missing."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> Machine:
    """This machine, torch's threads and the GPU ``device`` names (None on the CPU)."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return Machine(
        platform=platform.platform(),
        processor=cpu_name(),
        cpu_count=os.cpu_count() or 1,
        threads=torch.get_num_threads(),
        interop_threads=torch.get_num_interop_threads(),
        gpu=gpu,
    )


def synchronised(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """``fn`` followed by waiting for ``device``'s queued work (CUDA runs asynchronously); ``fn`` itself elsewhere."""
    if device.type != "cuda":
        return fn

    def run():
        value = fn()
        torch.cuda.synchronize(device)
        return value

    return run


@dataclass
class Counts:
    forwards: int = 0
    autograd_calls: int = 0


def count_passes(model: nn.Module, fn: Callable[[], object]) -> tuple[Counts, object]:
    """Run ``fn`` once, counting forward passes of ``model`` (a forward pre-hook) and calls of
    ``torch.autograd.backward`` (what ``Tensor.backward`` calls) and ``torch.autograd.grad``.
    -> (the counts, what ``fn`` returned)."""
    counts = Counts()

    def pre_hook(_module: nn.Module, _inputs: tuple) -> None:
        counts.forwards += 1

    def counting(original: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            counts.autograd_calls += 1
            return original(*args, **kwargs)

        return wrapper

    original_backward, original_grad = torch.autograd.backward, torch.autograd.grad
    handle = model.register_forward_pre_hook(pre_hook)
    torch.autograd.backward, torch.autograd.grad = counting(original_backward), counting(original_grad)
    try:
        value = fn()
    finally:
        torch.autograd.backward, torch.autograd.grad = original_backward, original_grad
        handle.remove()
    return counts, value


def leftovers(model: nn.Module) -> list[str]:
    """Hooks left on any module, and parameters whose ``.grad`` is set."""
    found = []
    for name, module in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            hooks = getattr(module, attr, None)
            if hooks:
                found.append(f"{name or '<model>'}.{attr}: {len(hooks)}")
    found += [f"{name}.grad is set" for name, p in model.named_parameters() if p.grad is not None]
    return found


def busy_warning() -> None:
    """Say so when other processes compete for the cores: the timings are then noisy."""
    if not hasattr(os, "getloadavg"):
        return
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cores:
        print(
            f"note: load average {load:.1f} on {cores} cores: other processes compete for the CPU, timings are "
            "noisy (rows run round-robin, so ratios suffer less than absolute times); --threads 1 is steadier"
        )


def failure(err: BaseException) -> str:
    """An exception as a row's note: ``failed (Type: message)``, the message's first line."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"failed ({type(err).__name__}: {message[:200]})"


# --------------------------------------------------------------------------------------------
# Text generated from the record
# --------------------------------------------------------------------------------------------


def times(value: float | None, digits: int = 2) -> str:
    """A ratio as ``1.59×`` (one digit from 10 on); "–" for None."""
    if value is None:
        return "–"
    return f"{value:.{1 if value >= 10 else digits}f}×"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """A Markdown table, numbers right-aligned."""
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---:" if r else "---" for r in right) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _main_models(record: BenchmarkRecord) -> list[str]:
    """The models with a ``grad_cams`` row: those the README's rows compare (other variants time fewer rows)."""
    return [m.label for m in record.models if record.row(GRAD_CAMS, m.label) is not None]


def _over_budget(row: SpeedRow | None, budget: float) -> bool:
    return row is not None and row.ratio is not None and row.ratio > budget


def _ratios(record: BenchmarkRecord, key: str, models: Sequence[str], digits: int, budget: bool = False) -> str:
    """``key``'s ratio per model, ``a / b``; over the budget in bold; "not installed" when no model measured it."""
    rows = [record.row(key, m) for m in models]
    if all(r is None or r.ratio is None for r in rows):
        notes = {r.note.split(" (")[0] for r in rows if r is not None and r.note}
        return "; ".join(sorted(notes)) or "–"
    texts = []
    for r in rows:
        text = times(None if r is None else r.ratio, digits)
        texts.append(f"**{text}**" if budget and _over_budget(r, record.budget) else text)
    return " / ".join(texts)


def budget_lines(record: BenchmarkRecord) -> list[str]:
    """``detect`` top-5 and ``segment`` top-3 (the defaults) of every model that has them, each as a multiple of one
    forward pass of that model as published, against the budget: one line per (call, model)."""
    lines = []
    for key, what in ((DETECT, "detect top-5"), (SEGMENT, "segment top-3 with the CRF")):
        for model in (m.label for m in record.models):
            if (row := record.row(key, model)) is not None:
                verdict = "over budget" if _over_budget(row, record.budget) else "within budget"
                verdict = row.note or "not measured" if row.ratio is None else verdict
                lines.append(f"{what}, {model}: {times(row.ratio, 1)} one forward pass ({verdict})")
    return lines


def readme_speed_rows(record: BenchmarkRecord) -> str:
    """The two **Speed** rows of the README's results table (Markdown, no trailing newline): Grad-CAM of the top-5
    classes against pytorch-grad-cam and torchcam, then ``detect`` top-5 and ``segment`` top-3 against the budget;
    all as multiples of one forward pass of the classifier as published, per model (``stand-in / ResNet-50``)."""
    models = _main_models(record)
    labels = " / ".join(models)
    over = [f"`segment` on the {m}" for m in models if _over_budget(record.row(SEGMENT, m), record.budget)]
    over += [f"`detect` on the {m}" for m in models if _over_budget(record.row(DETECT, m), record.budget)]
    crf = f"the dense CRF alone: {_ratios(record, REFINE, models, 1)}"
    verdict = f"over budget: {', '.join(over)}" if over else "within budget"
    quick = " (a quick run)" if record.settings.get("quick") else ""
    budget = times(record.budget, 0)
    return "\n".join(
        [
            f"| **Speed**: Grad-CAM of the top-5 classes, × one forward pass ({labels}){quick} | pytorch-grad-cam; "
            f"torchcam | {_ratios(record, PGC, models, 2)}; {_ratios(record, TORCHCAM, models, 2)} | "
            f"{_ratios(record, GRAD_CAMS, models, 2)} (`grad_cams`) | |",
            f"| **Speed**: `detect` top-5; `segment` top-3 with the CRF ({labels}){quick} | budget: {budget}; {budget} "
            f"| | {_ratios(record, DETECT, models, 1, True)}; {_ratios(record, SEGMENT, models, 1, True)} ({crf}; "
            f"{verdict}) | |",
        ]
    )


def source_text(record: BenchmarkRecord) -> str:
    """Which run made the tables: the file, date, models, versions and machine, in one paragraph."""
    m = record.machine
    models = "; ".join(f"**{i.label}** = `{i.name}` ({i.source})" for i in record.models)
    gpu = f", GPU {m.gpu}" if m.gpu else ", on the CPU"
    quick = ", a quick run (`--quick`): few timed runs, for checking only" if record.settings.get("quick") else ""
    return (
        f"From `benchmark.json` (`python -m evaluation.benchmark`, {record.date}{quick}); model {models}. "
        f"torch {record.torch}, torchvision {record.torchvision}, Python {record.python}. Machine: {m.platform}, "
        f"{m.processor}, {m.cpu_count} logical cores, {m.threads} torch thread(s){gpu}. Photo: {record.photo}."
    )


def _ms(row: SpeedRow | None) -> str:
    if row is None:
        return "–"
    return row.note.split(" (")[0] if row.ms is None else f"{row.ms:.1f}"


def _rows_table(record: BenchmarkRecord) -> list[str]:
    """Every row: ms and × one published forward pass per model, forward passes, autograd calls, timed runs."""
    labels = [m.label for m in record.models]
    header = ["row"] + [f"{label} {what}" for label in labels for what in ("ms", "× forward")]
    header += ["forward passes", "autograd calls", "timed runs"]
    lines = []
    for key, name in dict((r.key, r.name) for r in record.rows).items():
        rows = [record.row(key, label) for label in labels]
        cells = [name]
        for r in rows:
            cells += [_ms(r), times(None if r is None else r.ratio)]
        measured = [r for r in rows if r is not None and r.ms is not None]
        for attr in ("forwards", "autograd_calls", "repeats"):
            values = [str(getattr(r, attr)) for r in measured if getattr(r, attr) is not None]
            cells.append(" / ".join(dict.fromkeys(values)) or "–")  # one number when the models agree
        lines.append(cells)
    return _table(header, lines, [False] + [True] * (len(header) - 1))


def speed_table_markdown(record: BenchmarkRecord) -> str:
    """The results README's speed section (without its heading): the source, every row's ms and ratio per model, the
    budget of :data:`BUDGET_X_FORWARD` forward passes for ``detect`` top-5 and ``segment`` top-3, the target
    checks, the throughput on a batch, photos per second from several threads, memory and hygiene, and what each
    row includes."""
    lines = [source_text(record), "", "Median milliseconds per photo; × forward: multiples of one forward pass of the"]
    lines += ["same classifier as published (last stage at stride 2), the budget's unit.", ""]
    lines += _rows_table(record)
    if unmeasured := [r for r in record.rows if r.ms is None]:
        lines += ["", "Rows not measured:", ""]
        lines += [f"- {r.model}, {r.name}: {r.note}" for r in unmeasured]
    budget = times(record.budget, 0)
    lines += ["", f"The budget: `detect` top-5 and `segment` top-3 at the defaults cost at most {record.budget:g}"]
    lines += ["forward passes of the classifier as published.", ""]
    budget_rows = []
    for model in _main_models(record):
        for key in (DETECT, SEGMENT):
            r = record.row(key, model)
            if r is not None and r.ratio is not None:
                met = "over budget" if r.ratio > record.budget else "within"
                budget_rows.append([model, r.name, times(r.ratio, 1), f"≤ {budget}", met])
    lines += _table(["model", "row", "× forward", "budget", "result"], budget_rows, [False, False, True, False, False])
    lines += ["", "Target checks (ratios of medians from this run):", ""]
    check_rows = [
        [c.model, c.ratio, "–" if c.value is None else f"{c.value:.2f}", c.target,
         "not measured" if c.met is None else ("met" if c.met else "NOT MET")]
        for c in record.checks
    ]
    lines += _table(["model", "ratio", "value", "target", "result"], check_rows, [False, False, True, False, False])
    if record.throughput:
        lines += ["", _throughput_text(record), ""]
        labels = list(dict.fromkeys(t.model for t in record.throughput))
        names = list(dict.fromkeys(t.row for t in record.throughput))
        values = {(t.model, t.row): f"{t.photos_per_s:.1f}" for t in record.throughput}
        rows = [[name, *(values.get((label, name), "–") for label in labels)] for name in names]
        lines += _table(["row", *(f"{label} photos/s" for label in labels)], rows, [False] + [True] * len(labels))
    if record.threads:
        lines += [
            "",
            "One shared model called from several Python threads (`concurrent.futures.ThreadPoolExecutor`): photos "
            "per second of the whole run, from the calls that returned; failed: calls that raised; differ: classes "
            "or boxes unlike the sequential calls'.",
            "",
        ]
        rows = [
            [t.model, t.call, str(t.workers) if t.workers else "sequential", str(t.calls), f"{t.photos_per_s:.2f}",
             str(t.failures), str(t.differing), t.error or "–"]
            for t in record.threads
        ]
        header = ["model", "call", "threads", "calls", "photos/s", "failed", "differ", "first error"]
        lines += _table(header, rows, [False, False, True, True, True, True, True, False])
    if record.memory is not None:
        lines += ["", *_memory_lines(record.memory)]
    if record.descriptions:
        lines += ["", "What each row includes (the photo is decoded once, outside the timing):", ""]
        lines += [f"- {name}: {text}" for name, text in record.descriptions.items()]
    return "\n".join(lines) + "\n"


def _throughput_text(record: BenchmarkRecord) -> str:
    photos = record.throughput[0].photos
    runs = record.settings.get("batch_repeats", "?")
    return f"Throughput on a batch of {photos} photos of different sizes (median of {runs} run(s), photos per second):"


def _memory_lines(memory: Memory) -> list[str]:
    growth = memory.after_mb - memory.before_mb
    per_call = 1024 * growth / (memory.calls - memory.start)
    peak = "not available" if memory.peak_mb is None else f"{memory.peak_mb:.0f} MB"
    lines = [
        f"Memory: {memory.calls} calls of {memory.call}: resident memory {memory.before_mb:.1f} MB after call "
        f"{memory.start}, {memory.after_mb:.1f} MB after call {memory.calls} ({growth:+.1f} MB, {per_call:+.2f} KB "
        f"per call; {memory.source}); peak of the whole run {peak}.",
        "",
    ]
    for model, left in memory.leftovers.items():
        clean = "no hook left on any module, every parameter's `.grad` is None"
        lines.append(f"- {model}: " + (clean if not left else "LEFT OVER: " + "; ".join(left)))
    return lines
