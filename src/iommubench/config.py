"""YAML sweep config -> validated sweep -> points (DESIGN §3).

A config file names one point's parameters under `defaults:` and the axes to vary under
`sweep:`; the points are the cartesian product of the axes (first axis outermost, file order)
over the defaults, with every parameter filled in. Everything a user can get wrong ends as a
`ConfigError` whose text is the whole message for the user: `<file>: <key.path>: what is wrong;
what is allowed`. YAML is read with the safe constructor only, so a tag can never build an
object.

`--set KEY=VALUE` overrides are applied to the loaded document before validation; an error in
a value that came from an override names `--set KEY` instead of the file's key path.

Every integer parameter has an upper bound that fits its field of the native `struct
ib_params` and makes sense for it, so no value can wrap in C. `workers: auto` (a default, an
axis, or one element of an axis) expands to 1, 2, 4, ... up to the CPUs this process may use,
plus their count; the resolved config records the expanded list.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import itertools
import json
import math
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from iommubench import registry

__all__ = [
    "AUTO",
    "INT_LIMITS",
    "MAX_CONFIG_BYTES",
    "MAX_POINTS",
    "PARAMETERS",
    "PARAMETER_DEFAULTS",
    "TOP_KEYS",
    "ConfigError",
    "Sweep",
    "auto_workers",
    "auto_workers_for",
    "cpus_available",
    "fleet_cpus",
    "load_sweep",
    "max_workers",
    "parse_sweep",
    "parse_yaml",
    "physical_memory_mib",
]

TOP_KEYS: tuple[str, ...] = (
    "name",
    "description",
    "defaults",
    "sweep",
    "repetitions",
    "warmup_s",
    "duration_s",
    "point_timeout_s",
    "max_repetitions",
    "target_halfwidth",
)

# Same order as the parameter columns of points.csv (columns.PARAMETERS, less the two timing
# columns every point also carries); tests/test_config.py checks they agree.
PARAMETER_DEFAULTS: dict[str, object] = {
    "workload": "prefault",
    "driver": "lockfree",
    "allocator": "rcache",
    "invalidation": "lazy",
    "walker_safety": "unsafe",
    "walkers": 0,
    "walker_gap_us": 0,
    "workers": 1,
    "queues_per_worker": 1,
    "queue_depth": 32,
    "granule_pages": (1,),
    "dma_ns": 0,
    "inv_ns": 240,
    "completion": "local",
    "cs_ns": 0,
    "region_mib": 256,
    "chunk_pages": 32768,
    "unmap_pages": 1,
    "depot": "list",
    "dma_bits": 32,
    "cycles": 0,
    "sample_every": 1024,
    "seed": 1,
}
PARAMETERS: tuple[str, ...] = tuple(PARAMETER_DEFAULTS)

# A sweep of 10,000 points at the default 3 repetitions of 1.2 s runs for 10 hours: more is a
# typo, not a plan. The count is checked from the axis lengths before any value is validated.
MAX_POINTS = 10_000
PAGES_PER_MIB = 256  # 4 KiB pages
MAX_CONFIG_BYTES = 1 << 20  # a config is a page of YAML; more is the wrong file
U32_MAX = 2**32 - 1  # struct ib_params: workers, sample_every, queue_depth, ... are uint32_t
U64_MAX = 2**64 - 1  # struct ib_params: seed, cycles, region_pages, ... are uint64_t
# region_mib x 256 pages must fit uint64_t with room for the arena arithmetic; physical
# memory bounds it further where the OS says how much there is.
MAX_REGION_MIB = 2**32
MAX_REGION_PAGES = MAX_REGION_MIB * PAGES_PER_MIB
# K fixed cycles map and unmap every page of the region K times: 2^32 - 1 cycles of the
# smallest region (1 MiB) are already 2^41 operations, hours of work that the point timeout
# cuts short. (Counters count the operations done, which the timeout of at most a day keeps
# far below 2^64, whatever K is.)
MAX_CYCLES = U32_MAX
AUTO = "auto"  # workers: auto
MAX_DMA_NS = 10_000_000  # 10 ms, as the kernel's dma_map_benchmark allows
FINGERPRINT_VERSION = "iommubench-config-v1"


class ConfigError(Exception):
    """A config the harness refuses; `str(e)` is the complete message for the user.

    `source` is the file (or other origin) the config came from, `path` the key path or
    `--set KEY` that is wrong ("" when the whole document is), `detail` what is wrong.
    """

    def __init__(self, source: str, path: str, detail: str) -> None:
        self.source = source
        self.path = path
        self.detail = detail
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + detail)


class _Bad(Exception):
    """Raised inside validation; turned into a ConfigError once the source is known."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(path, detail)
        self.path = path
        self.detail = detail


# --------------------------------------------------------------------------- machine limits


# The allowed-CPU counts of the hosts a fleet run sweeps on (fleet_cpus), else None: this
# process' own CPUs then decide what `workers: auto` expands to and the worker limit.
_FLEET_CPUS: list[int] | None = None


@contextlib.contextmanager
def fleet_cpus(counts: Sequence[int]) -> Iterator[None]:
    """Load a config for a fleet whose hosts allow these CPU counts: `workers: auto` expands
    to the union of every host's own list, and the worker limit is 64 x the largest host's."""
    global _FLEET_CPUS
    _FLEET_CPUS = sorted(set(counts))
    try:
        yield
    finally:
        _FLEET_CPUS = None


def cpus_available() -> int:
    """The number of CPUs this process may run on (with fleet_cpus: the largest host's)."""
    if _FLEET_CPUS:
        return max(_FLEET_CPUS)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def max_workers() -> int:
    """The most workers a point may ask for: 64 per CPU this process may use."""
    return 64 * cpus_available()


def physical_memory_mib() -> int | None:
    """This machine's physical memory in MiB, or None when the OS will not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (AttributeError, ValueError, OSError):
        return None


# --------------------------------------------------------------------------- describing values


def _clip(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, with control characters escaped (one line always)."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: object) -> str:
    """A short, safe description of a user's value (never a full repr of a container)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        if value.bit_length() > 128:
            return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
        return str(value)
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"string {_clip(repr(value))}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key{'' if len(value) == 1 else 's'}"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    return f"a {type(value).__name__}"


def _key_text(key: object) -> str:
    return _clip(key) if isinstance(key, str) else f"<{_describe(key)}>"


def _suggest(word: object, choices: Sequence[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close and word.lower() in choices:
        close = [word.lower()]
    return f"; did you mean '{close[0]}'?" if close else ""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_hint(value: object, want: str) -> str:
    """Extra words for the common YAML slips: quoted numbers, 1e-3 read as a string."""
    if isinstance(value, str):
        try:
            float(value.strip())
        except ValueError:
            return ""
        if want == "float" and any(c in value for c in "eE") and "." not in value:
            return "; YAML reads an exponent without a dot as a string: write e.g. 1.0e-3"
        return "; remove the quotes"
    if isinstance(value, float) and want == "int" and value.is_integer():
        return f"; write {int(value)}"
    return ""


# --------------------------------------------------------------------------- field validators

Validator = Callable[[object, str], object]


def _int_field(lo: int, hi: int | None, unit: str = "") -> Validator:
    def check(value: object, path: str) -> int:
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        if not _is_int(value):
            raise _Bad(
                path,
                f"must be an integer {rng}{unit} (got {_describe(value)}"
                f"{_type_hint(value, 'int')})",
            )
        assert isinstance(value, int)
        if value < lo or (hi is not None and value > hi):
            raise _Bad(path, f"must be an integer {rng}{unit} (got {_describe(value)})")
        return value

    return check


def _float_field(lo: float, hi: float, lo_open: bool, unit: str = " s") -> Validator:
    def check(value: object, path: str) -> float:
        rng = f"{'>' if lo_open else '>='} {lo:g} and <= {hi:g}{unit}"
        if not (_is_int(value) or isinstance(value, float)):
            raise _Bad(
                path, f"must be a number {rng} (got {_describe(value)}{_type_hint(value, 'float')})"
            )
        assert isinstance(value, (int, float))
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < lo or number > hi or (lo_open and number == lo):
            raise _Bad(path, f"must be a number {rng} (got {_describe(value)})")
        return number

    return check


def _choice_field(choices: dict[str, str]) -> Validator:
    names = sorted(choices)

    def check(value: object, path: str) -> str:
        allowed = ", ".join(names)
        if not isinstance(value, str):
            raise _Bad(path, f"must be one of: {allowed} (got {_describe(value)})")
        if value not in choices:
            raise _Bad(
                path,
                f"unknown value {_clip(repr(value))}; allowed: {allowed}{_suggest(value, names)}",
            )
        return value

    return check


def auto_workers() -> list[int]:
    """What `workers: auto` expands to here, or on a fleet the union of its hosts' lists."""
    if _FLEET_CPUS:
        return sorted({w for n in _FLEET_CPUS for w in auto_workers_for(n)})
    return auto_workers_for(cpus_available())


def auto_workers_for(cpus: int) -> list[int]:
    """`workers: auto` on `cpus` allowed CPUs: 1, 2, 4, ... below the count, then the count."""
    counts = [1 << k for k in range(cpus.bit_length()) if 1 << k < cpus]
    return [*counts, cpus]


def _workers(value: object, path: str) -> int:
    """A worker count in 1..64 x the allowed CPUs (`auto` is expanded before this)."""
    limit = max_workers()
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if number is not None and 1 <= number <= limit:
        return number
    if number is not None and number > limit:
        hint = f"; the limit is 64 x the {cpus_available()} CPUs this process may use"
    else:
        hint = _type_hint(value, "int")
    raise _Bad(path, f"must be an integer in 1..{limit} or {AUTO} (got {_describe(value)}{hint})")


def _region_mib(value: object, path: str) -> int:
    mib = int(_int_field(*INT_LIMITS["region_mib"])(value, path))
    memory = physical_memory_mib()
    if memory is not None and mib > memory:
        raise _Bad(path, f"{mib} MiB exceeds this machine's physical memory ({memory} MiB)")
    return mib


_GRANULE = _int_field(1, 1024, " pages")


MAX_GRANULE_MIX = 64  # IB_MAX_GRANULES in the native core


def _granule(value: object, path: str) -> tuple[int, ...]:
    """An int or a non-empty list of ints (a mix), normalised to a tuple."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise _Bad(path, "empty granule mix; give at least one size in 1..1024 pages")
        if len(value) > MAX_GRANULE_MIX:
            raise _Bad(
                path,
                f"a granule mix of {len(value)} entries; at most {MAX_GRANULE_MIX} "
                "(repeat a size to weight it)",
            )
        return tuple(int(_GRANULE(item, f"{path}[{i}]")) for i, item in enumerate(value))
    if not _is_int(value):
        raise _Bad(
            path,
            f"must be an integer in 1..1024 pages or a list of them (got {_describe(value)}"
            f"{_type_hint(value, 'int')})",
        )
    return (int(_GRANULE(value, path)),)


# (lowest, highest, unit) of every plain integer parameter. Each highest value fits the
# parameter's field of struct ib_params after the runner's conversion (walker_gap_us x 1000,
# region_mib x 256) and is a bound that makes sense for it; tests/test_config.py writes each
# one into the native struct. workers and region_mib also follow the machine (see above).
INT_LIMITS: dict[str, tuple[int, int, str]] = {
    "walkers": (0, 64, ""),
    "walker_gap_us": (0, 10_000_000, " us"),
    "workers": (1, U32_MAX, ""),  # and at most 64 x the allowed CPUs
    "queues_per_worker": (1, 64, ""),
    "queue_depth": (1, 4096, ""),
    "dma_ns": (0, MAX_DMA_NS, " ns"),
    "inv_ns": (0, MAX_DMA_NS, " ns"),
    "cs_ns": (0, 1_000_000, " ns"),
    "region_mib": (1, MAX_REGION_MIB, " MiB"),  # and at most the physical memory
    "chunk_pages": (1, MAX_REGION_PAGES, " pages"),  # prefault: and at most the region
    "unmap_pages": (1, MAX_REGION_PAGES, " pages"),  # prefault: and at most the region
    "dma_bits": (20, 64, " bits"),
    "cycles": (0, MAX_CYCLES, ""),
    "sample_every": (0, U32_MAX, ""),
    "seed": (0, U64_MAX, ""),
}

FIELDS: dict[str, Validator] = {
    "workload": _choice_field(registry.WORKLOADS),
    "driver": _choice_field(registry.DRIVERS),
    "allocator": _choice_field(registry.ALLOCATORS),
    "invalidation": _choice_field(registry.INVALIDATIONS),
    "walker_safety": _choice_field(registry.WALKER_SAFETY),
    "completion": _choice_field(registry.COMPLETIONS),
    "depot": _choice_field(registry.DEPOTS),
    "granule_pages": _granule,
    **{name: _int_field(lo, hi, unit) for name, (lo, hi, unit) in INT_LIMITS.items()},
    "workers": _workers,
    "region_mib": _region_mib,
}

_REPETITIONS = _int_field(1, 1000)
_WARMUP = _float_field(0.0, 60.0, lo_open=False)
_DURATION = _float_field(0.0, 3600.0, lo_open=True)
_TIMEOUT = _float_field(0.0, 86400.0, lo_open=True)
_HALFWIDTH = _float_field(0.0, 1.0, lo_open=True, unit="")


# --------------------------------------------------------------------------- the sweep


def _plain(value: object) -> object:
    """A point value as plain YAML: a granule tuple becomes an int (one size) or a list."""
    if isinstance(value, tuple):
        return value[0] if len(value) == 1 else list(value)
    return value


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the run settings, the axes, and every point spelled out."""

    name: str
    description: str
    repetitions: int
    warmup_s: float
    duration_s: float
    point_timeout_s: float
    axes: dict[str, list[Any]]
    points: list[dict[str, object]]
    # adaptive repetitions: a point whose 95% interval is wider than target_halfwidth (a
    # fraction of its median) gets more repetitions, up to max_repetitions in all
    max_repetitions: int = 0
    target_halfwidth: float = 0.05

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def resolved(self) -> dict[str, Any]:
        """The config with every default spelled out, as plain YAML-able data.

        Dump it with `sort_keys=False` (or use `resolved_yaml()`): the order of the sweep
        axes is the order of the points, and part of the fingerprint.
        """
        first = self.points[0]
        return {
            "name": self.name,
            "description": self.description,
            "repetitions": self.repetitions,
            "warmup_s": self.warmup_s,
            "duration_s": self.duration_s,
            "point_timeout_s": self.point_timeout_s,
            "max_repetitions": self.max_repetitions,
            "target_halfwidth": self.target_halfwidth,
            "defaults": {k: _plain(first[k]) for k in PARAMETERS if k not in self.axes},
            "sweep": {k: [_plain(v) for v in values] for k, values in self.axes.items()},
        }

    def resolved_yaml(self) -> str:
        """`resolved()` as YAML text that re-loads to an equal Sweep (axis order kept)."""
        return yaml.safe_dump(self.resolved(), sort_keys=False, default_flow_style=False)

    def fingerprint(self) -> str:
        """sha256 hex of the canonical resolved config; any change to any value changes it."""
        canon = self.resolved()
        canon["sweep"] = [[k, v] for k, v in canon["sweep"].items()]  # keep the axis order
        text = json.dumps(
            [FINGERPRINT_VERSION, canon], sort_keys=True, separators=(",", ":"), allow_nan=False
        )
        return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- loading


def _node_paths(root: yaml.Node) -> Iterator[tuple[str, yaml.Node, yaml.Node | None]]:
    """(key path, value node, key node) for every node under a composed YAML document."""
    stack: list[tuple[str, yaml.Node, yaml.Node | None]] = [("", root, None)]
    seen: set[int] = set()
    while stack:
        path, node, key_node = stack.pop()
        yield path, node, key_node
        if id(node) in seen:  # an alias: walk each shared node once
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in reversed(node.value):
                name = _clip(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                stack.append((f"{path}.{name}" if path else str(name), v, k))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in reversed(list(enumerate(node.value))):
                stack.append((f"{path}[{i}]", v, None))


def _duplicate_key(root: yaml.Node) -> _Bad | None:
    """The first mapping key given twice (the YAML constructor silently keeps the last one)."""
    for path, node, _ in _node_paths(root):
        if not isinstance(node, yaml.MappingNode):
            continue
        first_line: dict[str, int] = {}
        for k, _v in node.value:
            if not isinstance(k, yaml.ScalarNode) or k.value == "<<":
                continue
            if k.value in first_line:
                where = f"{path}.{_clip(k.value)}" if path else _clip(k.value)
                return _Bad(
                    where,
                    f"duplicate key (line {k.start_mark.line + 1}; first given on line "
                    f"{first_line[k.value]}); give each key once",
                )
            first_line[k.value] = k.start_mark.line + 1
    return None


def _tag_path(root: yaml.Node | None, mark: yaml.Mark | None) -> str:
    """The key path of the node a constructor error points at, when it can be found."""
    if root is None or mark is None:
        return ""
    for path, node, key_node in _node_paths(root):
        for candidate in (node, key_node):
            if candidate is not None and (
                candidate.start_mark.line == mark.line
                and candidate.start_mark.column == mark.column
            ):
                return path
    return ""


def _yaml_error(source: str, root: yaml.Node | None, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError):
        path = _tag_path(root, mark)
        tag = problem.split("tag", 1)[-1].strip() if "tag" in problem else ""
        tag = tag.replace("tag:yaml.org,2002:", "!!")
        what = f"tag {_clip(tag)} is not allowed" if tag else _clip(problem, 120)
        detail = f"{what}; only plain YAML values (no !!python or other object tags)"
        if where:
            detail += f" ({where})"
        return ConfigError(source, path, detail)
    return ConfigError(source, where, f"YAML syntax error: {_clip(problem, 120)}")


def _read_text(source: str, path: str | Path) -> str:
    """The config file's text: a regular file of at most MAX_CONFIG_BYTES of UTF-8.

    A FIFO, a device such as /dev/zero or a directory is refused from its `stat` before it is
    opened (a FIFO would block the open, /dev/zero would be read until memory runs out); the
    opened file is checked again with `fstat` and read only up to the cap, in case the path
    was replaced or the file grows in between.
    """
    try:
        _check_file(source, os.stat(path))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(source, "", "no such file") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        _check_file(source, os.fstat(fd))
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(source, "", _too_big(size, exact=False))
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", f"not UTF-8 text (byte {exc.start})") from None


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _too_big(size: int, exact: bool = True) -> str:
    amount = f"{size} bytes" if exact else f"over {MAX_CONFIG_BYTES} bytes"
    return f"is {amount}; a config file may be at most {MAX_CONFIG_BYTES} bytes (1 MiB)"


def _check_file(source: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((what for test, what in _FILE_KINDS if test(st.st_mode)), "not a file")
        raise ConfigError(source, "", f"is {kind}, not a regular file; give a YAML config file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(source, "", _too_big(st.st_size))


# libyaml's parser when PyYAML was built with it (about 8x faster than the pure-Python one);
# either way only the safe constructor runs, so a tag can never build an object.
_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(source: str, text: str) -> object:
    """The YAML document in `text`, refusing syntax errors, object tags and duplicate keys."""
    loader = _LOADER(text)
    root: yaml.Node | None = None
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        duplicate = _duplicate_key(root)
        if duplicate is not None:
            raise ConfigError(source, duplicate.path, duplicate.detail)
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise _yaml_error(source, root, exc) from None
    except (ValueError, RecursionError, OverflowError) as exc:
        raise ConfigError(source, "", f"cannot parse YAML: {_clip(str(exc), 120)}") from None
    finally:
        loader.dispose()


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> Sweep:
    """Read, validate and expand the sweep config at `path`; raise ConfigError if it is bad."""
    source = str(path)
    return parse_sweep(parse_yaml(source, _read_text(source, path)), source, overrides)


# --------------------------------------------------------------------------- overrides


class _Labels:
    """Where each value came from, so that an error names the file key or the `--set`."""

    def __init__(self) -> None:
        self.section: dict[str, str] = {}  # "defaults"/"sweep" replaced whole by --set
        self.key: dict[tuple[str, str], str] = {}  # (section or "", key) -> "--set KEY"

    def top(self, key: str) -> str:
        return self.key.get(("", key), key)

    def param(self, section: str, key: object) -> str:
        if isinstance(key, str) and (section, key) in self.key:
            return self.key[(section, key)]
        return f"{self.section.get(section, section)}.{_key_text(key)}"


def _allowed_override_keys() -> str:
    return (
        f"allowed: a top-level key ({', '.join(sorted(TOP_KEYS))}), a parameter, "
        "defaults.PARAMETER or sweep.PARAMETER"
    )


def _section(doc: dict[Any, Any], name: str, labels: _Labels) -> dict[Any, Any]:
    current = doc.get(name)
    if current is None:
        current = {}
    if not isinstance(current, dict):
        raise _Bad(labels.top(name), f"must be a mapping (got {_describe(current)})")
    copy = dict(current)
    doc[name] = copy
    return copy


def _apply_overrides(doc: dict[Any, Any], overrides: Sequence[str], labels: _Labels) -> None:
    if isinstance(overrides, str):
        overrides = [overrides]
    for item in overrides:
        if not isinstance(item, str):
            raise _Bad("--set", f"must be a KEY=VALUE string (got {_describe(item)})")
        shown = f"--set {_clip(item, 50)}"
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise _Bad(shown, "expected KEY=VALUE, e.g. --set workers=4")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise _Bad(shown, f"cannot parse the value as YAML: {_clip(problem, 80)}") from None
        except (ValueError, RecursionError, OverflowError) as exc:
            raise _Bad(shown, f"cannot parse the value: {_clip(str(exc), 80)}") from None
        label = f"--set {_clip(key, 50)}"
        section, dot, param = key.partition(".")
        if dot:
            if section not in ("defaults", "sweep"):
                raise _Bad(
                    shown,
                    f"unknown key; only defaults.PARAMETER and sweep.PARAMETER take a "
                    f"dot{_suggest(section, ['defaults', 'sweep'])}",
                )
            if param not in FIELDS:
                raise _Bad(
                    shown,
                    f"unknown parameter; allowed: {', '.join(sorted(FIELDS))}"
                    f"{_suggest(param, sorted(FIELDS))}",
                )
            target = _section(doc, section, labels)
            if section == "sweep" and not isinstance(value, list):
                value = [value]
            target[param] = value
            labels.key[(section, param)] = label
        elif key in TOP_KEYS:
            doc[key] = value
            labels.key.pop(("", key), None)
            labels.key[("", key)] = label
            if key in ("defaults", "sweep"):
                labels.section[key] = label
                for k in [k for k in labels.key if k[0] == key]:
                    del labels.key[k]
        elif key in FIELDS:
            sweep = doc.get("sweep")
            if isinstance(sweep, dict) and key in sweep:
                target = _section(doc, "sweep", labels)
                target[key] = value if isinstance(value, list) else [value]
                labels.key[("sweep", key)] = label
            else:
                _section(doc, "defaults", labels)[key] = value
                labels.key[("defaults", key)] = label
        else:
            raise _Bad(
                shown,
                f"unknown key; {_allowed_override_keys()}"
                f"{_suggest(key, sorted(TOP_KEYS + PARAMETERS))}",
            )


# --------------------------------------------------------------------------- validation


def _check_keys(mapping: dict[Any, Any], label: Callable[[object], str]) -> None:
    for key in mapping:
        if key in FIELDS:
            continue
        if key in TOP_KEYS:
            raise _Bad(label(key), f"not a parameter; {key} is a top-level key")
        raise _Bad(
            label(key),
            f"unknown key; allowed: {', '.join(sorted(FIELDS))}{_suggest(key, sorted(FIELDS))}",
        )


def _too_many(count: int, exact: bool, repetitions: int, point_s: float) -> str:
    seconds = count * repetitions * point_s
    span = next(
        (
            f"{seconds / unit:.0f} {name}"
            for unit, name in ((86400, "days"), (3600, "h"), (60, "min"))
            if seconds >= 2 * unit
        ),
        f"{seconds:.0f} s",
    )
    return (
        f"{'' if exact else 'at least '}{count} points ({span} at {repetitions} "
        f"repetition{'' if repetitions == 1 else 's'} of {point_s:g} s); at most {MAX_POINTS} "
        "per sweep: split it into several configs"
    )


def _axis(key: str, raw_values: object, label: str) -> list[Any]:
    """One sweep axis: a non-empty list of valid, distinct values, `auto` workers expanded.

    Worker counts that `auto` adds are dropped where the list already holds them; a value the
    user wrote twice is refused (each point would run twice).
    """
    if not isinstance(raw_values, list):
        raise _Bad(label, f"must be a list of values, e.g. [1, 2, 4] (got {_describe(raw_values)})")
    if not raw_values:
        raise _Bad(label, "empty axis; give at least one value")
    seen: dict[Any, tuple[int, bool]] = {}  # value -> (index given at, came from auto)
    for i, raw in enumerate(raw_values):
        from_auto = key == "workers" and raw == AUTO
        expanded = auto_workers() if from_auto else [FIELDS[key](raw, f"{label}[{i}]")]
        for value in expanded:
            if value not in seen:
                seen[value] = (i, from_auto)
            elif not (from_auto or seen[value][1]):
                raise _Bad(
                    f"{label}[{i}]",
                    f"duplicate value {_describe(_plain(value))} (also at "
                    f"[{seen[value][0]}]); each point would run twice",
                )
    return list(seen)


def _validate(doc: object, source: str, overrides: Sequence[str]) -> Sweep:
    if doc is None:
        raise _Bad("", "empty document; expected a mapping with keys such as defaults: and sweep:")
    if not isinstance(doc, dict):
        raise _Bad("", f"the document must be a mapping of top-level keys (got {_describe(doc)})")
    labels = _Labels()
    doc = dict(doc)
    _apply_overrides(doc, overrides, labels)

    for key in doc:
        if key not in TOP_KEYS:
            hint = (
                f"; {key} is a parameter: put it under defaults: or sweep:"
                if key in FIELDS
                else _suggest(key, TOP_KEYS)
            )
            raise _Bad(
                labels.top(_key_text(key)),
                f"unknown top-level key; allowed: {', '.join(TOP_KEYS)}{hint}",
            )

    stem = Path(source).stem or "sweep"
    name = doc.get("name", stem)
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise _Bad(
            labels.top("name"), f"must be a non-empty single-line string (got {_describe(name)})"
        )
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise _Bad(labels.top("description"), f"must be a string (got {_describe(description)})")
    repetitions = int(_REPETITIONS(doc.get("repetitions", 3), labels.top("repetitions")))
    warmup_s = float(_WARMUP(doc.get("warmup_s", 0.2), labels.top("warmup_s")))
    duration_s = float(_DURATION(doc.get("duration_s", 1.0), labels.top("duration_s")))
    if "point_timeout_s" in doc:
        timeout = float(_TIMEOUT(doc["point_timeout_s"], labels.top("point_timeout_s")))
        if timeout <= warmup_s + duration_s:
            raise _Bad(
                labels.top("point_timeout_s"),
                f"must exceed warmup_s + duration_s = {warmup_s + duration_s:g} s "
                f"(got {timeout:g})",
            )
    else:
        timeout = 60.0 + 4.0 * (warmup_s + duration_s)
    max_reps = int(
        _REPETITIONS(doc.get("max_repetitions", repetitions), labels.top("max_repetitions"))
    )
    if max_reps < repetitions:
        raise _Bad(
            labels.top("max_repetitions"),
            f"must be at least repetitions = {repetitions} (got {max_reps})",
        )
    target = float(_HALFWIDTH(doc.get("target_halfwidth", 0.05), labels.top("target_halfwidth")))

    # defaults: every key known, every value valid
    raw_defaults = doc.get("defaults")
    if raw_defaults is None:
        raw_defaults = {}
    if not isinstance(raw_defaults, dict):
        raise _Bad(
            labels.top("defaults"),
            f"must be a mapping of parameter: value (got {_describe(raw_defaults)})",
        )
    _check_keys(raw_defaults, lambda k: labels.param("defaults", k))
    values: dict[str, object] = dict(PARAMETER_DEFAULTS)
    for key, value in raw_defaults.items():
        if key == "workers" and value == AUTO:
            continue  # becomes an axis below, unless the sweep has its own workers axis
        values[key] = FIELDS[key](value, labels.param("defaults", key))

    # sweep: every axis a known parameter with a non-empty list of valid, distinct values
    raw_sweep = doc.get("sweep")
    if raw_sweep is None:
        raw_sweep = {}
    if not isinstance(raw_sweep, dict):
        raise _Bad(
            labels.top("sweep"),
            f"must be a mapping of parameter: [values] (got {_describe(raw_sweep)})",
        )
    _check_keys(raw_sweep, lambda k: labels.param("sweep", k))
    if raw_sweep.get("workers") == AUTO:
        raw_sweep = {**raw_sweep, "workers": [AUTO]}
    at_least = math.prod(
        max(1, sum(1 for v in raw if v != AUTO))
        for raw in raw_sweep.values()
        if isinstance(raw, list)
    )
    if at_least > MAX_POINTS:
        raise _Bad(
            labels.top("sweep"),
            _too_many(at_least, False, repetitions, warmup_s + duration_s),
        )
    axes: dict[str, list[Any]] = {
        key: _axis(key, raw_values, labels.param("sweep", key))
        for key, raw_values in raw_sweep.items()
    }
    if raw_defaults.get("workers") == AUTO and "workers" not in axes:
        axes["workers"] = auto_workers()

    count = math.prod(len(v) for v in axes.values())
    if count > MAX_POINTS:
        raise _Bad(labels.top("sweep"), _too_many(count, True, repetitions, warmup_s + duration_s))

    points: list[dict[str, object]] = []
    names = list(axes)
    for combo in itertools.product(*(list(enumerate(axes[n])) for n in names)):
        point = dict(values)
        where: dict[str, str] = {}
        for name_, (i, value) in zip(names, combo, strict=True):
            point[name_] = value
            where[name_] = f"{labels.param('sweep', name_)}[{i}]"
        _check_point(point, where, raw_defaults, labels, len(points))
        point["warmup_s"] = warmup_s
        point["duration_s_requested"] = duration_s
        points.append(point)

    return Sweep(
        name=name,
        description=description,
        repetitions=repetitions,
        warmup_s=warmup_s,
        duration_s=duration_s,
        point_timeout_s=timeout,
        axes=axes,
        points=points,
        max_repetitions=max_reps,
        target_halfwidth=target,
    )


def _check_point(
    point: dict[str, object],
    where: dict[str, str],
    given: dict[Any, Any],
    labels: _Labels,
    index: int,
) -> None:
    """The rules between parameters, checked on each expanded point."""

    def origin(key: str) -> tuple[str, bool]:
        if key in where:
            return where[key], True
        if key in given:
            return labels.param("defaults", key), True
        return "built-in default", False

    region = point["region_mib"]
    assert isinstance(region, int)
    # region_mib, chunk_pages, unmap_pages and cycles are prefault-only: dma ignores them.
    # A chunk or an unmap call larger than the region would make no sense (and an unmap
    # stride near 2^64 would wrap the native page loop), so both must fit in the region.
    if point["workload"] != "prefault":
        return
    for key in ("chunk_pages", "unmap_pages"):
        pages = point[key]
        assert isinstance(pages, int)
        if pages <= region * PAGES_PER_MIB:
            continue
        key_at, key_given = origin(key)
        region_at, _ = origin("region_mib")
        # Name the key the user wrote: this one if given, else the region that is too small.
        raise _Bad(
            key_at if key_given else region_at,
            f"{key} {pages} ({key_at}) exceeds the {region * PAGES_PER_MIB} pages of "
            f"region_mib {region} ({region_at}); {key} must be <= region_mib x "
            f"{PAGES_PER_MIB} (point {index})",
        )


def parse_sweep(doc: object, source: str, overrides: Sequence[str] = ()) -> Sweep:
    """Validate an already-loaded YAML document (from `source`) and expand its points."""
    try:
        return _validate(doc, source, overrides)
    except _Bad as bad:
        raise ConfigError(source, bad.path, bad.detail) from None
