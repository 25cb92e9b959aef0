"""Reading devslice.yaml with positions, so every error names file, line and column."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from devslice.config.model import Environment, SecretRef
from devslice.errors import ConfigError, ConfigIssue, set_locator
from devslice.files import DEFAULT_FILENAME, config_above, write_atomic

M = TypeVar("M")


def find_config(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Path:
    """The config file: the one given, else devslice.yaml in this folder or a parent."""
    if explicit is not None:
        path = Path(explicit)
        if path.is_dir():
            inside = path / DEFAULT_FILENAME
            raise ConfigError(
                [ConfigIssue(str(path), None, None, "", "is a folder, not a file")],
                hint=f"pass the file itself, e.g. -f {inside}" if inside.is_file() else
                "pass the path of a devslice.yaml file with -f/--file",
            )
        if not path.is_file():
            raise ConfigError(
                [ConfigIssue(str(path), None, None, "", "no such file")],
                hint="check the path given with -f/--file",
            )
        return path
    here = (start or Path.cwd()).resolve()
    found = config_above(here)
    if found is not None:
        return found
    raise ConfigError(
        [ConfigIssue(str(here / DEFAULT_FILENAME), None, None, "", "no devslice.yaml here or in "
                     "any parent folder")],
        hint="run `devslice init` to write a starter file, or pass -f PATH",
    )


# Limits for files anyone with commit rights writes (issue 12): a config is a few hundred
# values a few levels deep, so these refuse only what no config needs, before Python's own
# recursion limit or an alias bomb (billion laughs) is reached.
MAX_DEPTH = 50
MAX_VALUES = 20_000
# The YAML tags a config may use: the core schema's, written or implied. Anything else
# (!!python/..., !!set, !!binary, local tags) means the file is not a devslice config.
_TAGS = {f"tag:yaml.org,2002:{t}" for t in
         ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")}


def read_config_text(path: Path) -> str:
    """A config file's text: UTF-8 (a leading byte order mark is dropped), else a located
    error at the first byte that is not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), None, None, "",
                                       f"cannot read: {exc.strerror or exc}")]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[start:exc.start].decode("utf-8", errors="replace")) + 1
        raise ConfigError([ConfigIssue(
            str(path), line, column, "", f"not UTF-8 text: byte 0x{data[exc.start]:02x} "
            "cannot start or continue a character")], hint="save the file as UTF-8") from None


def _issue(path: str, mark: Any, message: str) -> ConfigError:
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return ConfigError([ConfigIssue(path, line, column, "", message)])


def _offset_issue(path: str, text: str, offset: int, message: str) -> ConfigError:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return ConfigError([ConfigIssue(path, line, column, "", message)])


def _check_depth(text: str, path: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, at its line and column, before composing.

    Composing a document 1,000 levels deep raises RecursionError, and ruamel's scanner
    slows down with the square of the flow nesting (1,000 ``[`` take seconds), so brackets
    are counted first, cheaply; only where they pass the limit are the YAML tokens read (of
    that prefix alone), which decides: a bracket inside a scalar or comment is no nesting.
    Block nesting (by indentation) is found when composing fails: see :func:`_yaml_load`.
    """
    depth = 0
    for i, c in enumerate(text):
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                _check_depth_tokens(text[: i + 1], path)
                return
        elif c in "]}":
            depth = max(depth - 1, 0)


def _check_depth_tokens(text: str, path: str) -> None:
    from ruamel.yaml import YAML, tokens  # lazy: ruamel.yaml (~16 ms), only when YAML is read
    from ruamel.yaml.error import YAMLError  # lazy: ruamel.yaml (~16 ms), only when YAML is read

    opening = (tokens.BlockMappingStartToken, tokens.BlockSequenceStartToken,
               tokens.FlowMappingStartToken, tokens.FlowSequenceStartToken)
    closing = (tokens.BlockEndToken, tokens.FlowMappingEndToken, tokens.FlowSequenceEndToken)
    depth = 0
    try:
        for token in YAML(typ="rt").scan(text):
            if isinstance(token, opening):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _issue(path, token.start_mark, _TOO_DEEP)
            elif isinstance(token, closing):
                depth -= 1
    except YAMLError:
        return  # not deep, only malformed: composing reports it, located


_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep; a devslice config needs a few"


def _check_nodes(yaml: Any, root: Any, path: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, tags outside the core schema, scalars that
    cannot be read as their type (a 13th month, a 5,000-digit number, ``!!int x``),
    recursive anchors, and aliases that expand to more than MAX_VALUES values (an alias
    bomb), each at its line and column. Iterative, so nothing here can recurse too deep."""
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode  # lazy: ruamel.yaml, ~16 ms

    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool, int]] = [(root, False, 0)]
    open_nodes: set[int] = set()
    while stack:
        node, done, depth = stack.pop()
        if done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[id(node)] > MAX_VALUES:
                raise _issue(path, node.start_mark, f"expands to more than {MAX_VALUES} values "
                             "through anchors and aliases; write the values out instead")
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise _issue(path, node.start_mark, "an anchor refers to itself (a recursive "
                         "alias); a config cannot hold a value inside itself")
        tag = str(node.tag)
        if tag not in _TAGS:
            raise _issue(path, node.start_mark, f"the tag {tag!r} is not used in devslice "
                         "config: write plain values, lists and mappings")
        if isinstance(node, ScalarNode):
            if tag == "tag:yaml.org,2002:int" and len(node.value) > 100:
                raise _issue(path, node.start_mark, f"a number of {len(node.value)} digits is "
                             "too large")
            if tag != "tag:yaml.org,2002:merge":
                try:
                    yaml.constructor.construct_object(node, deep=True)
                except Exception as exc:  # any reason the scalar cannot be read
                    kind = tag.rsplit(":", 1)[-1]
                    raise _issue(path, node.start_mark, f"{node.value!r} is not a valid {kind} "
                                 f"({exc})") from None
            sizes[id(node)] = 1
            continue
        if not isinstance(node, MappingNode | SequenceNode):
            continue
        if depth >= MAX_DEPTH:
            raise _issue(path, node.start_mark, _TOO_DEEP)
        open_nodes.add(id(node))
        stack.append((node, True, depth))
        stack.extend((c, False, depth + 1) for c in _children(node))


def _children(node: Any) -> list[Any]:
    from ruamel.yaml.nodes import MappingNode, SequenceNode  # lazy: ruamel.yaml, ~16 ms

    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _yaml_load(text: str, path: str) -> Any:
    from ruamel.yaml import YAML  # lazy: ruamel.yaml (~16 ms), only when YAML is read
    from ruamel.yaml.error import MarkedYAMLError, YAMLError  # lazy: ruamel.yaml, ~16 ms
    from ruamel.yaml.reader import ReaderError  # lazy: ruamel.yaml (~16 ms), only when YAML is read

    text = text.removeprefix("\ufeff")
    yaml = YAML(typ="rt")
    try:
        _check_depth(text, path)
        try:
            root = yaml.compose(text)
        except RecursionError:
            _check_depth_tokens(text, path)  # nested by indentation: says where
            raise _issue(path, None, _TOO_DEEP) from None
        if root is None:
            return None
        _check_nodes(yaml, root, path)
        # one parse: the checked nodes are what the document is built from
        return yaml.constructor.construct_document(root)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        if "duplicate key" in str(exc):
            what = str(exc.problem).split(" with value")[0] + " (each key may appear once)"
        raise ConfigError(
            [ConfigIssue(path, mark.line + 1 if mark else None,
                         mark.column + 1 if mark else None, "", f"not valid YAML: {what}")]
        ) from None
    except ReaderError as exc:
        raise _offset_issue(path, text, exc.position, f"not valid YAML: character "
                            f"#x{exc.character:04x} is not allowed ({exc.reason})") from None
    except YAMLError as exc:
        raise _issue(path, None, f"not valid YAML: {exc}") from None


def _position(root: Any, loc: tuple[Any, ...], key: bool = False) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the deepest node along ``loc`` that the file contains."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq  # lazy: ruamel.yaml, ~16 ms

    node = root
    line, col = (0, 0) if isinstance(root, CommentedMap | CommentedSeq) else (None, None)
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.key(part) if (key and last) else node.lc.value(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
        # else: a union tag or a key the file leaves out; stay at the nearest written node
    if line is None:
        return None, None
    return line + 1, (col or 0) + 1


def locate(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """The issues with the line and column of their ``where`` (``services[0].run``,
    ``images[name=orders].context``) in their file, where they have none yet: the deepest
    part of that path the file writes, or the document's start (1:1) when it writes none
    of it. An issue is left as it was when its file is not absolute or not YAML. Each file
    is read once."""
    roots: dict[str, Any] = {}
    return [_locate(i, roots) for i in issues]


def _locate(issue: ConfigIssue, roots: dict[str, Any]) -> ConfigIssue:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq  # lazy: ruamel.yaml, ~16 ms

    if issue.line is not None or not issue.where or not os.path.isabs(issue.path):
        return issue
    if issue.path not in roots:
        try:
            roots[issue.path] = _yaml_load(read_config_text(Path(issue.path)), issue.path)
        except ConfigError:
            roots[issue.path] = None
    node = roots[issue.path]
    # A key the file leaves out altogether belongs to the document: 1:1, as for a missing
    # required key (issue 12: every config error has a line and column).
    position = (0, 0) if isinstance(node, CommentedMap) else None
    for name, index in re.findall(r"([^.\[\]]+)|\[([^\]]+)\]", issue.where):
        if isinstance(node, CommentedMap) and name and name in node:
            position, node = node.lc.key(name), node[name]
            continue
        if isinstance(node, CommentedSeq) and index:
            if index.isdigit() and int(index) < len(node):
                i = int(index)
            else:  # [key=value]: the item whose key has that value
                key, _, value = index.partition("=")
                i = next((j for j, item in enumerate(node) if isinstance(item, CommentedMap)
                          and str(item.get(key)) == value), -1)
            if i >= 0:
                position, node = node.lc.item(i), node[i]
                continue
        break
    if position is None:
        return issue
    return dataclasses.replace(issue, line=position[0] + 1, column=position[1] + 1)


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: Any, loc: tuple[Any, ...]) -> Any:
    """The pydantic model class that ``loc`` points into (for listing allowed keys)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current, part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {(f.alias or n): f for n, f in current.model_fields.items()}
            if part in fields:
                current = fields[part].annotation
    while typing.get_origin(current) in (typing.Annotated, typing.Union, types.UnionType):
        args = [a for a in typing.get_args(current) if a is not type(None)]
        current = args[0]
    return current


def _unwrap(current: Any, part: Any) -> Any:
    """The type under Annotated, list, dict and unions that ``part`` of a location goes
    into: a union's member whose ``backend`` is ``part`` (a tagged union), else its first."""
    from pydantic import BaseModel  # lazy: as in _model_at, for errors only

    while True:
        origin = typing.get_origin(current)
        if origin is typing.Annotated:
            current = typing.get_args(current)[0]
        elif origin in (list, dict):
            current = typing.get_args(current)[-1]
            if isinstance(part, int) or origin is dict:
                return current
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            tagged = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)
                      and getattr(a.model_fields.get("backend"), "default", None) == part]
            if tagged:
                return tagged[0]
            current = args[0]
        else:
            return current


def _message(err: dict[str, Any], model: Any) -> str:
    kind = err["type"]
    value = err.get("input")
    loc = tuple(err["loc"])
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing"
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = sorted((f.alias or n) for n, f in getattr(parent, "model_fields", {}).items())
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        guess = f"; did you mean {close[0]!r}?" if close else ";"
        return f"unknown key {loc[-1]!r}{guess} expected one of: {', '.join(allowed)}"
    msg = err["msg"]

    if kind == "model_type" and _model_at(model, loc) is SecretRef:
        # Never echo what was written: it is probably the secret itself.
        return ("secrets are not written in devslice.yaml: expected {fromEnv: VARIABLE} or "
                "{fromFile: PATH}")
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    if msg.startswith("Input should be "):
        msg = "expected " + msg[len("Input should be "):]
    elif msg.startswith("String should match pattern "):
        msg = "expected text matching " + msg[len("String should match pattern "):]
    elif kind == "union_tag_invalid":
        return f"{err['ctx']['tag']!r} is not a ledger backend: expected 'sqlite' or 'azureBlob'"
    else:
        msg = msg[0].lower() + msg[1:]
    shown = value if not isinstance(value, dict | list) else type(value).__name__
    return f"{shown!r} is not allowed: {msg}"


def _kind(value: Any) -> str:
    """What a YAML value is, in the words of the file rather than of Python."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _text_maps(model: Any) -> tuple[tuple[str, ...], ...]:
    """Where ``model`` has maps of environment variables (``dict[str, str]``)."""
    from devslice.config.local import LocalOverrides  # lazy: config.local imports this module

    if model is Environment:
        return (("contract", "env"),)
    if model is LocalOverrides:
        return (("env",),)
    return ()


def _scalars_as_text(data: Any, text: str, maps: tuple[tuple[str, ...], ...]) -> None:
    """Values of environment variables are text: ``PORT: 8080``, ``DEBUG: true`` and
    ``VERSION: 1.10`` mean "8080", "true" and "1.10", spelled as written (YAML would read
    1.10 as the number 1.1). Numbers, booleans and dates in those maps are replaced, in place,
    by the scalar's text in the file; anything else (null, lists, maps) is left for the
    model to refuse."""
    root: list[Any] = []  # the composed document, once one map needs it
    for loc in maps:
        target: Any = data
        for part in loc:
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        keys = [k for k, v in target.items()
                if isinstance(k, str) and v is not None and not isinstance(v, str | dict | list)]
        if not keys:
            continue
        if not root:
            from ruamel.yaml import YAML  # lazy: ruamel.yaml (~16 ms), only when YAML is read

            root.append(YAML(typ="rt").compose(text))
        written = _written_scalars(root[0], loc)
        for key in keys:
            if key in written:
                target[key] = written[key]


def _written_scalars(root: Any, loc: tuple[str, ...]) -> dict[str, str]:
    """The scalars of the map at ``loc`` as the file spells them."""
    from ruamel.yaml.nodes import MappingNode, ScalarNode  # lazy: as in _scalars_as_text

    node: Any = root
    for part in loc:
        node = next((v for k, v in node.value if isinstance(k, ScalarNode)
                     and k.value == part), None) if isinstance(node, MappingNode) else None
    if not isinstance(node, MappingNode):
        return {}
    return {k.value: v.value for k, v in node.value
            if isinstance(k, ScalarNode) and isinstance(v, ScalarNode)}


_UNION_MEMBER = re.compile(r"(int|str|float|bool|none|[a-z-]+\[.*\])")


def _merge_union_members(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One error for a value that fits none of a union's members (``port: eighty`` against
    ``int | 'auto'``), instead of one per member under locations the file does not have."""
    out: list[dict[str, Any]] = []
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        if not (loc and isinstance(loc[-1], str) and _UNION_MEMBER.fullmatch(loc[-1])
                and err["msg"].startswith("Input should be ")):
            out.append(err)
            continue
        wanted = err["msg"][len("Input should be "):].split(",")[0]
        if loc[:-1] in merged:
            merged[loc[:-1]]["wanted"].append(wanted)
            continue
        entry = {**err, "loc": loc[:-1], "wanted": [wanted]}
        merged[loc[:-1]] = entry
        out.append(entry)
    for entry in merged.values():
        entry["msg"] = "Input should be " + " or ".join(entry.pop("wanted"))
    return out


# What a valid file's text read as, kept beside the state (`.devslice/`, when the checkout has
# one) so that the next command whose file has the same text skips ruamel.yaml (its import
# and the round-trip parse, ~20 ms of a `status`; issue 17). Only the YAML reading is kept:
# the data is validated again each time, and anything wrong with it is reported by reading
# the file again, so errors keep their line and column.
DATA_CACHE = Path(".devslice") / "config-data.json"
_CACHE_FORMAT = 2


def _cache_file(path: str) -> Path | None:
    folder = Path(path).parent / DATA_CACHE.parent
    return folder / DATA_CACHE.name if os.path.isabs(path) and folder.is_dir() else None


def _cache_key(path: str, model: Any) -> str:
    from devslice import __version__  # lazy: devslice/__init__ is imported already

    return f"{_CACHE_FORMAT} {__version__} {model.__module__}.{model.__qualname__} {path}"


def _cached_data(text: str, path: str, model: Any) -> Any:
    """The data ``text`` read as when it was last valid, or None."""
    import json  # lazy: only where a cache may exist

    cache = _cache_file(path)
    if cache is None:
        return None
    try:
        entry = json.loads(cache.read_text(encoding="utf-8")).get(_cache_key(path, model))
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(entry, dict) or entry.get("sha256") != _digest(text):
        return None
    data = entry.get("data")
    return data if isinstance(data, dict) else None


def _keep_data(text: str, path: str, model: Any, data: Any) -> None:
    """Keep what ``text`` read as, when JSON holds it exactly (not dates, keys that are not
    text); a cache that cannot be written is no error."""
    import json  # lazy: only where a cache may exist

    cache = _cache_file(path)
    if cache is None:
        return
    try:
        plain = json.loads(json.dumps(data))
        if plain != data:
            return
        try:
            kept = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = {}
        kept = kept if isinstance(kept, dict) else {}
        key = _cache_key(path, model)
        kept = {k: v for k, v in kept.items() if k.split(" ", 2)[:2] == key.split(" ", 2)[:2]}
        kept[key] = {"sha256": _digest(text), "data": plain}
        # 0600: devslice.local.yaml's env overrides are the developer's own values
        write_atomic(cache, json.dumps(kept))
    except (OSError, TypeError, ValueError):
        return


def _digest(text: str) -> str:
    import hashlib  # lazy: only where a cache may exist

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_config(text: str, path: str, model: type[M]) -> M:  # M is a pydantic model
    """Validate YAML text against a pydantic model; errors carry file:line:col."""
    data = _cached_data(text, path, model)
    if data is not None:
        try:
            obj: M = model.model_validate(data)  # type: ignore[attr-defined]
        except ValidationError:
            pass  # read the file again below: the errors are located there
        else:
            checker = getattr(obj, "semantic_issues", None)
            if checker is None or not checker():
                return obj
    return _parse_config(text, path, model)


def _parse_config(text: str, path: str, model: type[M]) -> M:
    data = _yaml_load(text, path)
    if data is None:
        raise ConfigError([ConfigIssue(path, 1, 1, "", "the file is empty")],
                          hint="run `devslice init` for a starter file")
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(path, 1, 1, "", f"expected a mapping of keys, found "
                                                       f"{_kind(data)}")])
    _scalars_as_text(data, text, _text_maps(model))
    try:
        obj: M = model.model_validate(data)  # type: ignore[attr-defined]
    except ValidationError as exc:
        issues = []
        for err in _merge_union_members([dict(e) for e in exc.errors()]):
            loc = tuple(err["loc"])
            if err["type"] == "union_tag_invalid":
                loc = (*loc, "backend")
            on_key = err["type"] == "extra_forbidden"
            if loc and loc[-1] == "[key]":  # a mapping's key is wrong, not its value
                loc, on_key = loc[:-1], True
            line, col = _position(data, loc, key=on_key)
            where = _where(tuple(p for p in loc if p not in ("sqlite", "azureBlob")))
            issues.append(ConfigIssue(path, line, col, where, _message(dict(err), model)))
        issues.sort(key=lambda i: (i.line or 0, i.column or 0))
        raise ConfigError(issues) from None
    checker = getattr(obj, "semantic_issues", None)
    if checker is not None:
        found = checker()
        if found:
            raise ConfigError([ConfigIssue(path, *_position(data, loc), _where(loc), msg)
                               for loc, msg in found])
    _keep_data(text, path, model, data)
    return obj


def load_config(path: str | os.PathLike[str] | None = None) -> tuple[Environment, Path]:
    """Find, read and validate devslice.yaml; returns the Environment and the file's path."""
    found = find_config(path)
    return parse_config(read_config_text(found), str(found), Environment), found


set_locator(locate)  # ConfigErrors raised anywhere name the line and column of their key
