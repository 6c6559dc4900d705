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

import hashlib
import itertools
import json
import math
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from iommubench.spec import catalogue, hostlimits, parameters
from iommubench.spec.hostlimits import (
    AUTO,
    auto_workers,
    auto_workers_for,
    cpus_available,
    fleet_cpus,
    max_workers,
    physical_memory_mib,
)
from iommubench.spec.validators import (
    Bad,
    Validator,
    clip,
    describe,
    float_field,
    int_field,
    key_text,
    suggest,
)

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

# Every parameter's default, validator and bounds come from the one table (parameters.py).
PARAMETER_DEFAULTS: dict[str, object] = parameters.DEFAULTS
PARAMETERS: tuple[str, ...] = parameters.NAMES
FIELDS: dict[str, Validator] = {p.name: p.check for p in parameters.PARAMETERS}
INT_LIMITS: dict[str, tuple[int, int, str]] = {
    p.name: p.bounds for p in parameters.PARAMETERS if p.bounds is not None
}

# A sweep of 10,000 points at the default 3 repetitions of 1.2 s runs for 10 hours: more is a
# typo, not a plan. The count is checked from the axis lengths before any value is validated.
MAX_POINTS = 10_000
PAGES_PER_MIB = parameters.PAGES_PER_MIB
MAX_CONFIG_BYTES = 1 << 20  # a config is a page of YAML; more is the wrong file
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


_REPETITIONS = int_field(1, 1000)
_WARMUP = float_field(0.0, 60.0, lo_open=False)
_DURATION = float_field(0.0, 3600.0, lo_open=True)
_TIMEOUT = float_field(0.0, 86400.0, lo_open=True)
_HALFWIDTH = float_field(0.0, 1.0, lo_open=True, unit="")


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
    # a union of sweeps (`sweep:` given as a list): each part's axes, and the defaults every
    # part expands over; empty for a single sweep (then `axes` holds its axes)
    union: tuple[dict[str, list[Any]], ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict, compare=False)

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def resolved(self) -> dict[str, Any]:
        """The config with every default spelled out, as plain YAML-able data.

        Dump it with `sort_keys=False` (or use `resolved_yaml()`): the order of the sweep
        axes is the order of the points, and part of the fingerprint.
        """
        first = self.points[0]
        if self.union:
            defaults = {k: _plain(v) for k, v in self.defaults.items()}
            sweep: Any = [{k: [_plain(v) for v in vs] for k, vs in a.items()} for a in self.union]
        else:
            # the config's own defaults where it has them: a point's values are resolved for
            # that point (a lock-free first point records lock `none`, which would become the
            # default of every lock-taking point when the YAML is read again)
            given = self.defaults or first
            defaults = {k: _plain(given.get(k, first[k])) for k in PARAMETERS if k not in self.axes}
            sweep = {k: [_plain(v) for v in values] for k, values in self.axes.items()}
        return {
            "name": self.name,
            "description": self.description,
            "repetitions": self.repetitions,
            "warmup_s": self.warmup_s,
            "duration_s": self.duration_s,
            "point_timeout_s": self.point_timeout_s,
            "max_repetitions": self.max_repetitions,
            "target_halfwidth": self.target_halfwidth,
            "defaults": defaults,
            "sweep": sweep,
        }

    def resolved_yaml(self) -> str:
        """`resolved()` as YAML text that re-loads to an equal Sweep (axis order kept)."""
        return yaml.safe_dump(self.resolved(), sort_keys=False, default_flow_style=False)

    def fingerprint(self) -> str:
        """sha256 hex of the canonical resolved config; any change to any value changes it."""
        canon = self.resolved()
        parts = canon["sweep"] if self.union else [canon["sweep"]]
        canon["sweep"] = [[[k, v] for k, v in part.items()] for part in parts]  # axis order
        if not self.union:
            canon["sweep"] = canon["sweep"][0]
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
                name = clip(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                stack.append((f"{path}.{name}" if path else str(name), v, k))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in reversed(list(enumerate(node.value))):
                stack.append((f"{path}[{i}]", v, None))


def _duplicate_key(root: yaml.Node) -> Bad | None:
    """The first mapping key given twice (the YAML constructor silently keeps the last one)."""
    for path, node, _ in _node_paths(root):
        if not isinstance(node, yaml.MappingNode):
            continue
        first_line: dict[str, int] = {}
        for k, _v in node.value:
            if not isinstance(k, yaml.ScalarNode) or k.value == "<<":
                continue
            if k.value in first_line:
                where = f"{path}.{clip(k.value)}" if path else clip(k.value)
                return Bad(
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
        what = f"tag {clip(tag)} is not allowed" if tag else clip(problem, 120)
        detail = f"{what}; only plain YAML values (no !!python or other object tags)"
        if where:
            detail += f" ({where})"
        return ConfigError(source, path, detail)
    return ConfigError(source, where, f"YAML syntax error: {clip(problem, 120)}")


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
        raise ConfigError(source, "", f"cannot parse YAML: {clip(str(exc), 120)}") from None
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
        return f"{self.section.get(section, section)}.{key_text(key)}"


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
        raise Bad(labels.top(name), f"must be a mapping (got {describe(current)})")
    copy = dict(current)
    doc[name] = copy
    return copy


def _set_in_parts(parts: list[Any], key: str, value: object, every: bool) -> list[Any]:
    """A union of sweeps with the axis `key` set to `value` in every part (`every`), or in
    the parts that have it."""
    axis = value if isinstance(value, list) else [value]
    return [
        {**part, key: axis} if isinstance(part, dict) and (every or key in part) else part
        for part in parts
    ]


def _apply_overrides(doc: dict[Any, Any], overrides: Sequence[str], labels: _Labels) -> None:
    if isinstance(overrides, str):
        overrides = [overrides]
    for item in overrides:
        if not isinstance(item, str):
            raise Bad("--set", f"must be a KEY=VALUE string (got {describe(item)})")
        shown = f"--set {clip(item, 50)}"
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise Bad(shown, "expected KEY=VALUE, e.g. --set workers=4")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise Bad(shown, f"cannot parse the value as YAML: {clip(problem, 80)}") from None
        except (ValueError, RecursionError, OverflowError) as exc:
            raise Bad(shown, f"cannot parse the value: {clip(str(exc), 80)}") from None
        label = f"--set {clip(key, 50)}"
        section, dot, param = key.partition(".")
        if dot:
            if section not in ("defaults", "sweep"):
                raise Bad(
                    shown,
                    f"unknown key; only defaults.PARAMETER and sweep.PARAMETER take a "
                    f"dot{suggest(section, ['defaults', 'sweep'])}",
                )
            if param not in FIELDS:
                raise Bad(
                    shown,
                    f"unknown parameter; allowed: {', '.join(sorted(FIELDS))}"
                    f"{suggest(param, sorted(FIELDS))}",
                )
            if section == "sweep" and not isinstance(value, list):
                value = [value]
            if section == "sweep" and isinstance(doc.get("sweep"), list):
                doc["sweep"] = _set_in_parts(doc["sweep"], param, value, every=True)
            else:
                _section(doc, section, labels)[param] = value
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
            if isinstance(sweep, list):  # the parts that vary it, and the default for the rest
                doc["sweep"] = _set_in_parts(sweep, key, value, every=False)
                _section(doc, "defaults", labels)[key] = value
                labels.key[("sweep", key)] = labels.key[("defaults", key)] = label
            elif isinstance(sweep, dict) and key in sweep:
                target = _section(doc, "sweep", labels)
                target[key] = value if isinstance(value, list) else [value]
                labels.key[("sweep", key)] = label
            else:
                _section(doc, "defaults", labels)[key] = value
                labels.key[("defaults", key)] = label
        else:
            raise Bad(
                shown,
                f"unknown key; {_allowed_override_keys()}"
                f"{suggest(key, sorted(TOP_KEYS + PARAMETERS))}",
            )


# --------------------------------------------------------------------------- validation


def _check_keys(mapping: dict[Any, Any], label: Callable[[object], str]) -> None:
    for key in mapping:
        if key in FIELDS:
            continue
        if key in TOP_KEYS:
            raise Bad(label(key), f"not a parameter; {key} is a top-level key")
        raise Bad(
            label(key),
            f"unknown key; allowed: {', '.join(sorted(FIELDS))}{suggest(key, sorted(FIELDS))}",
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
        raise Bad(label, f"must be a list of values, e.g. [1, 2, 4] (got {describe(raw_values)})")
    if not raw_values:
        raise Bad(label, "empty axis; give at least one value")
    seen: dict[Any, tuple[int, bool]] = {}  # value -> (index given at, came from auto)
    for i, raw in enumerate(raw_values):
        from_auto = key == "workers" and raw == AUTO
        expanded = auto_workers() if from_auto else [FIELDS[key](raw, f"{label}[{i}]")]
        for value in expanded:
            if value not in seen:
                seen[value] = (i, from_auto)
            elif not (from_auto or seen[value][1]):
                raise Bad(
                    f"{label}[{i}]",
                    f"duplicate value {describe(_plain(value))} (also at "
                    f"[{seen[value][0]}]); each point would run twice",
                )
    return list(seen)


def _validate(doc: object, source: str, overrides: Sequence[str]) -> Sweep:
    if doc is None:
        raise Bad("", "empty document; expected a mapping with keys such as defaults: and sweep:")
    if not isinstance(doc, dict):
        raise Bad("", f"the document must be a mapping of top-level keys (got {describe(doc)})")
    labels = _Labels()
    doc = dict(doc)
    _apply_overrides(doc, overrides, labels)
    if isinstance(doc.get("sweep"), list):
        return _union(doc, source, labels)
    return _validate_doc(doc, source, labels)


def _union(doc: dict[Any, Any], source: str, labels: _Labels) -> Sweep:
    """`sweep:` as a list of sweeps: each part expands over the defaults as a sweep of its
    own would, and the points are the parts' in order, a point already given by an earlier
    part left out (so a point in two parts runs once)."""
    parts = doc["sweep"]
    top = labels.section.get("sweep", labels.top("sweep"))
    if not parts:
        raise Bad(top, "empty list of sweeps; give at least one mapping of parameter: [values]")
    swept: list[Sweep] = []
    for i, part in enumerate(parts):
        labels.section["sweep"] = f"{top}[{i}]"
        if not isinstance(part, dict):
            raise Bad(labels.section["sweep"], f"must be a mapping (got {describe(part)})")
        swept.append(_validate_doc({**doc, "sweep": part}, source, labels))
    points: list[dict[str, object]] = []
    seen: set[str] = set()
    for point in (p for s in swept for p in s.points):
        key = json.dumps([[k, _plain(v)] for k, v in point.items()], default=str)
        if key not in seen:
            seen.add(key)
            points.append(point)
    first = swept[0]
    if len(points) > MAX_POINTS:
        raise Bad(
            top, _too_many(len(points), True, first.repetitions, first.warmup_s + first.duration_s)
        )
    return replace(first, axes={}, points=points, union=tuple(s.axes for s in swept))


def _validate_doc(doc: dict[Any, Any], source: str, labels: _Labels) -> Sweep:
    """Validate a document whose overrides are applied and whose `sweep:` is one mapping."""
    for key in doc:
        if key not in TOP_KEYS:
            hint = (
                f"; {key} is a parameter: put it under defaults: or sweep:"
                if key in FIELDS
                else suggest(key, TOP_KEYS)
            )
            raise Bad(
                labels.top(key_text(key)),
                f"unknown top-level key; allowed: {', '.join(TOP_KEYS)}{hint}",
            )

    stem = Path(source).stem or "sweep"
    name = doc.get("name", stem)
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise Bad(
            labels.top("name"), f"must be a non-empty single-line string (got {describe(name)})"
        )
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise Bad(labels.top("description"), f"must be a string (got {describe(description)})")
    repetitions = int(_REPETITIONS(doc.get("repetitions", 3), labels.top("repetitions")))
    warmup_s = float(_WARMUP(doc.get("warmup_s", 0.2), labels.top("warmup_s")))
    duration_s = float(_DURATION(doc.get("duration_s", 1.0), labels.top("duration_s")))
    if "point_timeout_s" in doc:
        timeout = float(_TIMEOUT(doc["point_timeout_s"], labels.top("point_timeout_s")))
        if timeout <= warmup_s + duration_s:
            raise Bad(
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
        raise Bad(
            labels.top("max_repetitions"),
            f"must be at least repetitions = {repetitions} (got {max_reps})",
        )
    target = float(_HALFWIDTH(doc.get("target_halfwidth", 0.05), labels.top("target_halfwidth")))

    # defaults: every key known, every value valid
    raw_defaults = doc.get("defaults")
    if raw_defaults is None:
        raw_defaults = {}
    if not isinstance(raw_defaults, dict):
        raise Bad(
            labels.top("defaults"),
            f"must be a mapping of parameter: value (got {describe(raw_defaults)})",
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
        raise Bad(
            labels.top("sweep"),
            f"must be a mapping of parameter: [values] (got {describe(raw_sweep)})",
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
        raise Bad(
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
        raise Bad(labels.top("sweep"), _too_many(count, True, repetitions, warmup_s + duration_s))

    points: list[dict[str, object]] = []
    seen: set[tuple[object, ...]] = set()
    names = list(axes)
    for combo in itertools.product(*(list(enumerate(axes[n])) for n in names)):
        point = dict(values)
        where: dict[str, str] = {}
        for name_, (i, value) in zip(names, combo, strict=True):
            point[name_] = value
            where[name_] = f"{labels.param('sweep', name_)}[{i}]"
        _check_point(point, where, raw_defaults, labels, len(points))
        point["driver"], point["lock"] = catalogue.resolve_driver(
            str(point["driver"]), str(point["lock"])
        )
        _check_arena(point, where, raw_defaults, labels, len(points))
        point["warmup_s"] = warmup_s
        point["duration_s_requested"] = duration_s
        key = tuple(point.values())
        if key not in seen:  # lock-free drivers ignore the lock axis: one point each
            seen.add(key)
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
        defaults=dict(values),
    )


def _origin(
    key: str, where: dict[str, str], given: dict[Any, Any], labels: _Labels
) -> tuple[str, bool]:
    """Where a point's value of `key` was set (its sweep axis, else the defaults), and whether
    the config set it at all."""
    if key in where:
        return where[key], True
    if key in given:
        return labels.param("defaults", key), True
    return "built-in default", False


def _check_point(
    point: dict[str, object],
    where: dict[str, str],
    given: dict[Any, Any],
    labels: _Labels,
    index: int,
) -> None:
    """The rules between parameters, checked on each expanded point."""

    def origin(key: str) -> tuple[str, bool]:
        return _origin(key, where, given, labels)

    _check_pgtable(point, origin, index)
    _check_kernel_allocator(point, origin, index)
    region = point["region_mib"]
    assert isinstance(region, int)
    # A chunk or an unmap call larger than the region would make no sense (and an unmap
    # stride near 2^64 would wrap the native page loop), so both must fit in the region
    # wherever the point's workload reads them (the catalogue says which does).
    for key in ("chunk_pages", "unmap_pages"):
        if not (catalogue.applies(key, point) and catalogue.applies("region_mib", point)):
            continue
        pages = point[key]
        assert isinstance(pages, int)
        if pages <= region * PAGES_PER_MIB:
            continue
        key_at, key_given = origin(key)
        region_at, _ = origin("region_mib")
        # Name the key the user wrote: this one if given, else the region that is too small.
        raise Bad(
            key_at if key_given else region_at,
            f"{key} {pages} ({key_at}) exceeds the {region * PAGES_PER_MIB} pages of "
            f"region_mib {region} ({region_at}); {key} must be <= region_mib x "
            f"{PAGES_PER_MIB} (point {index})",
        )


# The kernel-code shim's NR_CPUS: an IOVA allocator loaded from the kernel's code (iova.c's
# per-CPU rcache) takes each worker as one of its CPUs.
KERNEL_CPUS = 64


def _check_kernel_allocator(point: dict[str, object], origin: Any, index: int) -> None:
    """The kernel's iova.c keeps one rcache per CPU and the worker index is the CPU: at most
    the shim's 64."""
    from iommubench.core import binding

    name = point.get("allocator")
    if name is None or not catalogue.applies("allocator", point):
        return
    if not binding.allocator_object_variant(str(name)):
        return
    workers = point["workers"]
    assert isinstance(workers, int)
    if workers <= KERNEL_CPUS:
        return
    at, given = origin("workers")
    raise Bad(
        at if given else origin("allocator")[0],
        f"workers {workers} ({at}) do not fit allocator {name}: each worker is one of the "
        f"kernel-code shim's {KERNEL_CPUS} CPUs (point {index})",
    )


def _check_pgtable(point: dict[str, object], origin: Any, index: int) -> None:
    """A page table that brings its own driver code (the kernel's) crosses only with the
    drivers its native registration accepts."""
    from iommubench.core import binding

    lib = binding.lib()
    if lib.ib_pgtable_accepts(parameters.native_params(point)):
        return

    def accepts(**change: object) -> bool:
        return bool(lib.ib_pgtable_accepts(parameters.native_params({**point, **change})))

    drivers = [d for d in binding.driver_names() if accepts(driver=d, walkers=0)]
    if (
        point["driver"] not in drivers
        and catalogue.resolve_driver(str(point["driver"]), None)[0] not in drivers
    ):
        key, what = "driver", f"under driver {' or '.join(drivers)}"
    else:
        safe = [s for s in binding.walker_safety_names() if accepts(walker_safety=s)]
        key, what = "walker_safety", f"with walkers under walker_safety {' or '.join(safe)}"
    at, given = origin(key)
    raise Bad(
        at if given else origin("pgtable")[0],
        f"{key} {point[key]} ({at}) does not apply to pgtable {point['pgtable']}: it runs "
        f"{what} (point {index})",
    )


def arena_mib(point: dict[str, object]) -> float:
    """The size of the shared arena the harness will create for the point (the page-table
    pool, counters, histograms, IOVA state), in MiB."""
    from iommubench.core import arena

    return arena.arena_bytes(parameters.native_params(point)) / 2**20


def _check_arena(
    point: dict[str, object],
    where: dict[str, str],
    given: dict[Any, Any],
    labels: _Labels,
    index: int,
) -> None:
    """The arena must fit in this machine's physical memory: a modelled region costs its page
    tables (about 1/512 of it), never the memory it stands for. The harness also checks
    /dev/shm's free space before a run."""
    memory = hostlimits.physical_memory_mib()
    if memory is None:
        return
    try:
        mib = arena_mib(point)
    except ValueError:
        return  # a point the native core refuses fails on its own, with its reason
    if mib <= memory:
        return
    key = "region_mib" if catalogue.applies("region_mib", point) else "workers"
    at, set_by_config = _origin(key, where, given, labels)
    at = at if set_by_config else key
    raise Bad(
        at,
        f"point {index} needs an arena of {mib:,.0f} MiB (page tables, counters and IOVA "
        f"state; the mapped memory itself is never allocated), more than this machine's "
        f"physical memory ({memory} MiB)",
    )


def parse_sweep(doc: object, source: str, overrides: Sequence[str] = ()) -> Sweep:
    """Validate an already-loaded YAML document (from `source`) and expand its points."""
    try:
        return _validate(doc, source, overrides)
    except Bad as bad:
        raise ConfigError(source, bad.path, bad.detail) from None
