"""The parameters of a point, each defined once.

A `Parameter` holds a name (also its points.csv column), its one default, its validator with
the allowed values in words, how it reaches the native `struct ib_params`, and its one-line
doc. Validation (config.py), the parameter columns of points.csv (columns.py), `iommubench
list`, the runner's native encoding and the README's parameter list (`iommubench list
--markdown`) all derive from `PARAMETERS`; adding a parameter is one entry here.

Names that the native core registers (workloads, drivers, locks, allocators, invalidation and
walker modes) come from its catalogue (catalogue.py) when a value is checked, so a config can
only name what the build implements; so do their descriptions and which parameters each one
reads (a parameter a point's strategies do not read is neither encoded nor shown).

Every integer's upper bound fits its field of `struct ib_params` after the conversion its
`Native` applies (walker_gap_us x 1000, region_mib x 256) and makes sense for the parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from iommubench.core import binding
from iommubench.spec import catalogue, hostlimits, profiles
from iommubench.spec.validators import Bad, Validator, choice_field, describe, int_field, type_hint

__all__ = [
    "BY_NAME",
    "DEFAULTS",
    "NAMES",
    "PARAMETERS",
    "TEXT_PARAMETERS",
    "Native",
    "Parameter",
    "encode",
    "list_lines",
    "markdown",
]

PAGES_PER_MIB = 256  # 4 KiB pages
U32_MAX = 2**32 - 1  # struct ib_params: workers, sample_every, queue_depth, ... are uint32_t
U64_MAX = 2**64 - 1  # struct ib_params: seed, region_pages, unmap_pages, ... are uint64_t
# region_mib x 256 pages must fit uint64_t with room for the arena arithmetic; physical
# memory bounds it further where the OS says how much there is.
MAX_REGION_MIB = 2**32
MAX_REGION_PAGES = MAX_REGION_MIB * PAGES_PER_MIB
# K fixed cycles map and unmap every page of the region K times: 2^32 - 1 cycles of the
# smallest region (1 MiB) are already 2^41 operations, hours of work that the point timeout
# cuts short.
MAX_CYCLES = U32_MAX
MAX_DMA_NS = 10_000_000  # 10 ms, as the kernel's dma_map_benchmark allows
MAX_GRANULE_MIX = 64  # IB_MAX_GRANULES in the native core
MAX_GRANULE_PAGES = 1024


# --------------------------------------------------------------------------- native encoding


@dataclass(frozen=True)
class Native:
    """How a value reaches `struct ib_params`: `field = convert(value)`, written only where
    the point's strategies read the parameter (catalogue.applies; `scope` names another
    parameter whose reach governs the write, e.g. a profile's invalidation cost goes where
    inv_ns does); the field stays 0 elsewhere. A `count` field takes a list value:
    `count = len(list)`, `field[i] = list[i]`."""

    field: str
    convert: Callable[[Any], Any] = int
    scope: str = ""
    count: str = ""
    words: str = ""  # how the conversion reads in the docs, e.g. "x 1000" ("" = as given)
    also: tuple[str, ...] = ()  # more fields that take the same value

    def write(self, p: Any, point: dict[str, Any], value: object) -> None:
        if value is None:  # a parameter left unset leaves its fields as others wrote them
            return
        converted = self.convert(value)
        if self.count:
            setattr(p, self.count, len(converted))
            array = getattr(p, self.field)
            for i, item in enumerate(converted):
                array[i] = item
        else:
            for name in (self.field, *self.also):
                setattr(p, name, converted)

    def describe(self, name: str) -> str:
        fields = (self.field, *self.also, *((self.count,) if self.count else ()))
        text = ", ".join(f"`{f}`" for f in fields)
        text += f" {self.words}" if self.words else ""
        readers = [
            w for w in catalogue.names("workload") if catalogue.applies(self.scope or name, w)
        ]
        if len(readers) < len(catalogue.names("workload")):
            text += f" ({', '.join(readers)} only)"
        return text


def _index(names: Callable[[], Sequence[str]]) -> Callable[[Any], int]:
    """A name's index in a registry: how a choice reaches its native field."""
    return lambda value: list(names()).index(value)


# --------------------------------------------------------------------------- the table

# `iommubench list`'s line for a name that stands for others
_ALSO: dict[str, str] = {
    **{a: f"= {d} with lock {lk}" for a, (d, lk) in catalogue.DRIVER_ALIASES.items()},
    catalogue.NO_LOCK: "what a lock-free driver records",
}


@dataclass(frozen=True)
class Parameter:
    """One parameter of a point; `name` is also its points.csv column."""

    name: str
    default: object
    check: Validator  # (value, key path) -> the value normalised, or raises Bad
    allowed: Callable[[], str]  # the allowed values in words (list, the README)
    doc: str  # one line
    native: Native | None = None
    choices: Callable[[], dict[str, str]] | None = None  # name -> description, for choices
    text: bool = False  # a text column in points.csv (a name, or a list such as a mix)
    bounds: tuple[int, int, str] | None = None  # an integer's (lowest, highest, unit)
    # unset (None), the value follows another parameter's: (its name, how its value maps)
    follows: tuple[str, Callable[[Any], Any]] | None = None
    before: object = None  # the value rows written before the parameter existed ran with

    @property
    def column(self) -> str:
        return self.name


def _choice(
    name: str,
    default: str,
    doc: str,
    names: Callable[[], Sequence[str]],
    native: Native | None = None,
    before: object = None,
) -> Parameter:
    """A name from the catalogue: `names()` lists the implemented ones, the catalogue
    describes them."""

    def described() -> dict[str, str]:
        docs = catalogue.descriptions(name)
        return {n: docs.get(n) or _ALSO.get(n, "") for n in names()}

    return Parameter(
        name,
        default,
        choice_field(names),
        lambda: ", ".join(sorted(names())),
        doc,
        native,
        choices=described,
        text=True,
        before=before,
    )


def _int(
    name: str,
    default: int | None,
    doc: str,
    lo: int,
    hi: int,
    unit: str = "",
    native: Native | None = None,
    check: Validator | None = None,
    allowed: str = "",
    follows: tuple[str, Callable[[Any], Any]] | None = None,
) -> Parameter:
    words = allowed or f"{lo}..{hi}{unit}"
    return Parameter(
        name,
        default,
        check or int_field(lo, hi, unit),
        lambda: words,
        doc,
        native or Native(name),
        bounds=(lo, hi, unit),
        follows=follows,
    )


def _workers(value: object, path: str) -> int:
    """A worker count in 1..64 x the allowed CPUs (`auto` is expanded before this)."""
    limit = hostlimits.max_workers()
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if number is not None and 1 <= number <= limit:
        return number
    if number is not None and number > limit:
        hint = f"; the limit is 64 x the {hostlimits.cpus_available()} CPUs this process may use"
    else:
        hint = type_hint(value, "int")
    raise Bad(
        path,
        f"must be an integer in 1..{limit} or {hostlimits.AUTO} (got {describe(value)}{hint})",
    )


def _optional(check: Validator) -> Validator:
    """`check`, or None (unset: the parameter follows another one, as its doc says)."""

    def checked(value: object, path: str) -> object:
        return None if value is None else check(value, path)

    return checked


_GRANULE = int_field(1, MAX_GRANULE_PAGES, " pages")


def _granule(value: object, path: str) -> tuple[int, ...]:
    """An int or a non-empty list of ints (a mix), normalised to a tuple."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise Bad(path, "empty granule mix; give at least one size in 1..1024 pages")
        if len(value) > MAX_GRANULE_MIX:
            raise Bad(
                path,
                f"a granule mix of {len(value)} entries; at most {MAX_GRANULE_MIX} "
                "(repeat a size to weight it)",
            )
        return tuple(int(_GRANULE(item, f"{path}[{i}]")) for i, item in enumerate(value))
    if not (isinstance(value, int) and not isinstance(value, bool)):
        raise Bad(
            path,
            f"must be an integer in 1..1024 pages or a list of them (got {describe(value)}"
            f"{type_hint(value, 'int')})",
        )
    return (int(_GRANULE(value, path)),)


def _granules(value: Any) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)


def _profile_inv_ns(name: object) -> int:
    """The invalidation cost of a profile (of an unknown name: the default's)."""
    known = isinstance(name, str) and name in profiles.PROFILES
    return profiles.inv_ns_for(name) if known else profiles.DEFAULT_INV_NS


def _driver_names() -> list[str]:
    """The drivers the core implements, and the old names that stand for one with a lock."""
    return [*binding.driver_names(), *catalogue.DRIVER_ALIASES]


def _lock_names() -> list[str]:
    return [*binding.lock_names(), catalogue.NO_LOCK]


def _lock_index(value: str) -> int:
    return 0 if value == catalogue.NO_LOCK else binding.lock_names().index(value)


def _per_call_cost(direction: str) -> Parameter:
    """cs_map_ns / cs_unmap_ns: one direction's busy work, following cs_ns while unset."""
    return _int(
        f"cs_{direction}_ns",
        None,
        f"busy work inside each {direction} call only (a per-call cost)",
        0,
        1_000_000,
        " ns",
        check=_optional(int_field(0, 1_000_000, " ns")),
        allowed="0..1000000 ns; unset: cs_ns",
        follows=("cs_ns", lambda ns: ns),
    )


PARAMETERS: tuple[Parameter, ...] = (
    _choice(
        "workload",
        "prefault",
        "what the workers do (`iommubench list` describes each)",
        binding.workload_names,
        Native("workload", _index(binding.workload_names), words="registry index"),
    ),
    _choice(
        "driver",
        "lockfree",
        "how map and unmap are serialised (`iommubench list` describes each); serial-spin and "
        "serial-mutex stand for domain-lock with ttas and with pthread-mutex",
        _driver_names,
        Native("driver", _index(binding.driver_names), words="registry index"),
    ),
    _choice(
        "pgtable",
        "model",
        "which page table: the model, or the kernel's own io-pgtable-arm.c built from a kernel "
        "tree (lockfree and domain-lock only; see docs/kernel-code.md)",
        binding.pgtable_names,
        Native("pgtable", _index(binding.pgtable_names), words="registry index"),
    ),
    _choice(
        "lock",
        "ttas",
        "the lock algorithm a locking driver takes (domain-lock, table-lock); a lock-free "
        "driver records none",
        _lock_names,
        Native("lock", _lock_index, words="registry index (none: 0)"),
    ),
    _choice(
        "allocator",
        "rcache",
        "the IOVA allocator (dma)",
        binding.allocator_names,
        Native("allocator", _index(binding.allocator_names), words="registry index"),
    ),
    _choice(
        "invalidation",
        "lazy",
        "IOTLB invalidation after unmap (dma)",
        binding.invalidation_names,
        Native("invalidation", _index(binding.invalidation_names), words="registry index"),
    ),
    _choice(
        "walker_safety",
        "unsafe",
        "what keeps a walker off freed tables",
        binding.walker_safety_names,
        Native("walker_safety", _index(binding.walker_safety_names), words="registry index"),
    ),
    _int(
        "walkers",
        0,
        "extra processes dumping the whole table, pass after pass, as debugfs does",
        0,
        64,
    ),
    _int(
        "walker_gap_us",
        0,
        "a walker's sleep between passes (0: back to back)",
        0,
        10_000_000,
        " us",
        Native("walker_gap_ns", lambda us: us * 1000, words="x 1000"),
    ),
    _int(
        "workers",
        1,
        "worker processes, one per CPU, pinned round-robin; `auto`: 1, 2, 4, ... and the CPUs",
        1,
        U32_MAX,
        check=_workers,
        allowed="1..64 x the allowed CPUs, or auto",
    ),
    _int(
        "queues_per_worker",
        1,
        "device queues each worker owns (dma)",
        1,
        64,
        native=Native("queues_per_worker"),
    ),
    _int(
        "queue_depth",
        32,
        "I/Os in flight per queue (dma)",
        1,
        4096,
        native=Native("queue_depth"),
    ),
    Parameter(
        "granule_pages",
        (1,),
        _granule,
        lambda: f"1..{MAX_GRANULE_PAGES}, or a list of up to {MAX_GRANULE_MIX} (a mix)",
        "pages per I/O; a list is a mix drawn uniformly with the seeded RNG (dma)",
        Native("granules", _granules, count="n_granules"),
        text=True,
    ),
    _int(
        "dma_ns",
        0,
        "how long each I/O stays mapped, the transfer (dma)",
        0,
        MAX_DMA_NS,
        " ns",
        Native("dma_ns"),
    ),
    _choice(
        "profile",
        profiles.NONE,
        "per-call costs from published measurements: the busy work in each map and unmap "
        "call is calibrated against the model's own single-page call so that the call costs "
        "the published figure (cs_* add to it); a profile's invalidation cost sets inv_ns "
        "unless the point does (`iommubench list` names each source)",
        lambda: list(profiles.PROFILES),
        Native("inv_ns", profiles.inv_ns_for, scope="inv_ns", words="its invalidation cost"),
        before=profiles.NONE,
    ),
    _int(
        "inv_ns",
        None,
        "one IOTLB invalidation, busy-waited under the invalidation-queue lock (dma)",
        0,
        MAX_DMA_NS,
        " ns",
        Native("inv_ns"),
        check=_optional(int_field(0, MAX_DMA_NS, " ns")),
        allowed=f"0..{MAX_DMA_NS} ns; unset: the profile's, else {profiles.DEFAULT_INV_NS} ns",
        follows=("profile", _profile_inv_ns),
    ),
    _choice(
        "completion",
        "local",
        "which CPU completes an I/O (dma)",
        lambda: list(catalogue.COMPLETIONS),
        Native("completion", _index(lambda: list(catalogue.COMPLETIONS)), words="index"),
    ),
    _int(
        "cs_ns",
        0,
        "calibrated busy work inside each map and unmap, standing in for PTE cache maintenance",
        0,
        1_000_000,
        " ns",
        Native("cs_map_ns", also=("cs_unmap_ns",)),
    ),
    *(_per_call_cost(direction) for direction in ("map", "unmap")),
    _int(
        "region_mib",
        256,
        "the region mapped, then unmapped (prefault)",
        1,
        MAX_REGION_MIB,
        " MiB",
        Native("region_pages", lambda mib: mib * PAGES_PER_MIB, words="x 256"),
        allowed=f"1..{MAX_REGION_MIB} MiB; only its page tables are allocated (the arena must "
        "fit in physical memory)",
    ),
    _int(
        "chunk_pages",
        32768,
        "pages per chunk dealt round-robin to the workers: 32768 (128 MiB) keeps them in "
        "separate tables, 1 makes them race for the same ones (prefault)",
        1,
        MAX_REGION_PAGES,
        " pages",
        Native("chunk_pages"),
        allowed="1..the region's pages",
    ),
    _int(
        "unmap_pages",
        1,
        "pages per unmap call; a call covering a whole table frees it (prefault)",
        1,
        MAX_REGION_PAGES,
        " pages",
        allowed="1..the region's pages",
    ),
    _choice(
        "depot",
        "list",
        "the rcache depot of full magazines (dma)",
        lambda: list(catalogue.DEPOTS),
        Native("depot", _index(lambda: list(catalogue.DEPOTS)), words="index"),
    ),
    _int(
        "dma_bits",
        32,
        "the DMA mask: IOVAs lie below 2^dma_bits (dma)",
        20,
        64,
        " bits",
        Native("dma_bits"),
    ),
    _choice(
        "map_mode",
        "sg",
        "how an I/O of several pages is mapped (dma)",
        lambda: list(catalogue.MAP_MODES),
        Native("map_mode", _index(lambda: list(catalogue.MAP_MODES)), words="index"),
        before="sg",  # every page had its own map call
    ),
    _int(
        "cycles",
        0,
        "0: run for duration_s; K: exactly K map/unmap cycles of the region (prefault)",
        0,
        MAX_CYCLES,
        native=Native("cycles"),
    ),
    _int(
        "sample_every",
        1024,
        "time one operation in N for the latency histograms; 0 = off",
        0,
        U32_MAX,
    ),
    _int("seed", 1, "the seed of every worker's random choices (granule mix)", 0, U64_MAX),
)

BY_NAME: dict[str, Parameter] = {p.name: p for p in PARAMETERS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
DEFAULTS: dict[str, object] = {p.name: p.default for p in PARAMETERS}
# The parameters that follow each one while unset (ignoring it in a comparison ignores them).
FOLLOWERS: dict[str, tuple[str, ...]] = {
    leader: tuple(p.name for p in PARAMETERS if p.follows and p.follows[0] == leader)
    for leader in dict.fromkeys(p.follows[0] for p in PARAMETERS if p.follows)
}
# Parameters whose points.csv column holds text (a name, or a granule mix such as "1;2").
TEXT_PARAMETERS: tuple[str, ...] = tuple(p.name for p in PARAMETERS if p.text)


# --------------------------------------------------------------------------- uses


def applies(name: str, point: Any) -> bool:
    """Whether parameter `name` means anything for `point` (its parameters, or a workload
    name): catalogue.applies. A parameter the core reads for other strategies only, e.g.
    chunk_pages for dma, does not; unknown names and strategies apply."""
    return catalogue.applies(name, point)


def encode(p: Any, point: dict[str, Any]) -> None:
    """Write every parameter of `point` into the native struct ib_params `p` (a parameter
    the point does not give takes its default)."""
    for param in PARAMETERS:
        native = param.native
        if native is not None and catalogue.applies(native.scope or param.name, point):
            native.write(p, point, point.get(param.name, param.default))


def native_params(point: dict[str, Any]) -> Any:
    """The point's parameters as the native core's struct ib_params (`encode`), with its
    timing and the table pages its arena needs; the busy work of a cost profile is the
    runner's to set (it is calibrated by running points)."""
    ffi, lib = binding.load()
    p = ffi.new("struct ib_params *")
    driver, lock = catalogue.resolve_driver(point["driver"], point.get("lock"))
    encode(p, {**point, "driver": driver, "lock": lock})
    p.warmup_ns = int(point.get("warmup_s", 0.0) * 1e9)
    p.duration_ns = int(point.get("duration_s_requested", 1.0) * 1e9)
    p.pool_pages = lib.ib_pool_pages_for(p)
    return p


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return str(value[0]) if len(value) == 1 else str(list(value))
    return str(value)


def list_lines() -> list[str]:
    """`iommubench list`: every choice's names with a line each, then the parameters."""
    out = []
    for param in PARAMETERS:
        if param.choices is None:
            continue
        out.append(f"{param.name}:")
        choices = param.choices()
        width = max(14, *(len(name) for name in choices))
        out += [f"  {name:<{width}} {what}" for name, what in choices.items()]
    out.append("parameters (default; allowed):")
    out += [f"  {p.name:<17} {_shown(p.default)}; {p.allowed()}. {p.doc}" for p in PARAMETERS]
    return out


def markdown() -> str:
    """The parameter table of docs/configuration.md (`iommubench list --markdown`). The names
    of the catalogue's axes are left to `iommubench list`, so a new strategy leaves the table
    as it is."""
    rows = [
        "| parameter | default | allowed | native field | what it sets |",
        "|---|---|---|---|---|",
    ]
    for p in PARAMETERS:
        native = p.native.describe(p.name) if p.native else "–"
        allowed = p.allowed().replace("|", "\\|")
        if p.name in catalogue.AXES:
            allowed = f"one of the `{p.name}` names `iommubench list` shows"
        rows.append(f"| `{p.name}` | `{_shown(p.default)}` | {allowed} | {native} | {p.doc} |")
    return "\n".join(rows) + "\n"


DOCS_TABLE = "docs/configuration.md"  # where `make docs` writes the table
README_BEGIN = "<!-- parameters: generated by `iommubench list --markdown` -->\n"
README_END = "<!-- parameters: end -->"


def with_table(text: str) -> str:
    """`text` (docs/configuration.md) with the table between its parameter markers
    regenerated."""
    head, rest = text.split(README_BEGIN, 1)
    return head + README_BEGIN + markdown() + README_END + rest.split(README_END, 1)[1]


def update_readme(path: str) -> None:
    """Regenerate the parameter table of `path` in place (`make docs`)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(with_table(text))
