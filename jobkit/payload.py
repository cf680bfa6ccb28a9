"""A job class's params as the JSON a worker reads, checked at dispatch.

A worker reads params with ``Params.model_validate_json`` (see
:mod:`jobkit.worker.execute`), so dispatch reads the JSON it is about to store back with
that very parser: whatever dispatch accepts, a worker reads. No list of known pitfalls
could promise that for every model a user can write, and each of these got through
before: NaN written as ``null`` where a float is required, nesting deeper than the JSON
parser's limit (200), integers longer than it reads. The read-back costs one parse of
the params per job, a microsecond or two for a small model (``benchmarks`` measure
dispatch with it).

The read-back is skipped where it cannot fail: for a model made only of plain types
(numbers, text, lists, dicts, nested plain models ..., no custom validator or serializer,
no alias, nothing strict: see :func:`round_trips`), pydantic's JSON reads back as it was
unless it holds a ``null`` (a NaN may hide there), an escape (a lone surrogate), deep
nesting or a very long number, and only such JSON is read back. For the benchmark's
one-field model that halves what dispatch_many adds to each job.

One loss the read-back cannot see: pydantic writes NaN and infinity as ``null``, which an
``Optional[float]`` or ``Any`` field reads back as ``None``. Only JSON holding a ``null``
can have lost a float that way, so only such params are compared with what was read back,
and only when they differ is the model searched for the culprit.

Also here: which keywords are params (anything else given to ``dispatch()`` is an error,
not silently dropped), and the size limit (``JOBKIT_MAX_PAYLOAD``).
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import AliasChoices, AliasPath, BaseModel, Json, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError, PydanticSerializationError

from jobkit.errors import PayloadTooLarge, SerializationError


def accepted_keys(model: type[BaseModel]) -> frozenset[str]:
    """The keys of a mapping ``model.model_validate`` takes as fields, as pydantic's rules
    on aliases decide (other keys it drops, or keeps as extras with ``extra="allow"``)."""
    config = model.model_config
    by_name = bool(config.get("validate_by_name") or config.get("populate_by_name"))
    by_alias = config.get("validate_by_alias", True)
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        aliases = _aliases(info)
        if not aliases or by_name or not by_alias:
            keys.add(name)
        if by_alias:
            keys.update(aliases)
    return frozenset(keys)


def _aliases(info: FieldInfo) -> list[str]:
    alias = info.validation_alias if info.validation_alias is not None else info.alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    found = []
    for choice in choices:
        first = choice.path[0] if isinstance(choice, AliasPath) else choice
        if isinstance(first, str):
            found.append(first)
    return found


# Core-schema node types whose JSON reads back as it was written (the data permitting:
# see _suspect). Anything else, or any custom serializer, validator or alias, and the
# model is read back always.
_PLAIN = frozenset(
    {
        "model", "model-fields", "model-field", "default", "nullable", "int", "float",
        "str", "bool", "none", "any", "list", "set", "frozenset", "tuple", "dict",
        "literal", "datetime", "date", "time", "timedelta", "decimal", "uuid", "union",
        "definitions", "definition-ref",
    }
)  # fmt: skip
# Keys a plain node may carry besides its sub-schemas: constraints and bookkeeping.
_INERT = frozenset(
    {
        "type", "ref", "metadata", "cls", "model_name", "config", "default", "root_model",
        "custom_init", "computed_fields", "fields", "schema", "items_schema", "keys_schema",
        "values_schema", "choices", "definitions", "schema_ref", "expected", "mode",
        "max_length", "min_length", "ge", "gt", "le", "lt", "multiple_of", "pattern",
        "microseconds_precision", "allow_inf_nan", "max_digits", "decimal_places",
        "extras_schema", "extra_behavior", "post_init", "variadic_item_index", "title",
    }
)  # fmt: skip


# Model settings that leave the JSON as it reads: names, and unknown keys refused or dropped.
_PLAIN_CONFIG = frozenset({"title", "validate_by_alias", "validate_by_name"})
_PLAIN_SETTINGS = frozenset(
    {("extra_fields_behavior", "forbid"), ("extra_fields_behavior", "ignore")}
)

_SUBSCHEMAS = (
    "schema", "items_schema", "keys_schema", "values_schema", "choices", "definitions",
    "extras_schema",
)  # fmt: skip


def round_trips(model: type[BaseModel]) -> bool:
    """Whether ``model``'s JSON always reads back as it was, but for what
    :func:`_suspect` looks for in the bytes themselves."""
    return _plain(model.__pydantic_core_schema__)


def _plain(node: Any) -> bool:
    if isinstance(node, list | tuple):
        return all(_plain(item) for item in node)
    if not isinstance(node, dict):
        return True  # a constraint's value, a default, a class
    kind = node.get("type")
    if kind is not None and kind not in _PLAIN:
        return False
    if node.get("strict") or node.get("custom_init") or node.get("root_model"):
        return False
    if node.get("computed_fields") or node.get("extra_behavior") == "allow":
        return False
    config = node.get("config")
    if isinstance(config, dict) and not _PLAIN_CONFIG.issuperset(
        k for k, v in config.items() if v and (k, v) not in _PLAIN_SETTINGS
    ):
        return False
    if kind == "model-field" and (
        node.get("validation_alias") or node.get("serialization_alias")
        or node.get("serialization_exclude")
    ):  # fmt: skip
        return False
    if any(key not in _INERT for key in node if key != "fields"):
        return False  # a serializer, validator, alias ... of its own
    subs = [node[key] for key in _SUBSCHEMAS if key in node]
    fields = node.get("fields")
    if isinstance(fields, dict):
        subs.extend(fields.values())
    elif isinstance(fields, list):
        subs.extend(fields)
    return all(_plain(sub) for sub in subs)


def _suspect(raw: bytes) -> bool:
    """JSON a plain model wrote that may still not read back as it was: a ``null`` (NaN
    and infinity are written so), an escape (a lone surrogate is), nesting that may pass
    the parser's 200 levels, or a number longer than it reads (4,300 digits). Both of the
    last take hundreds of bytes: short JSON is only looked at for the first two."""
    if b"null" in raw or b"\\u" in raw:
        return True
    return len(raw) >= _SHORT and (len(raw) > 4000 or raw.count(b"[") + raw.count(b"{") > 150)


def _batch_suspect(raws: Sequence[bytes]) -> bool:
    """Whether any of ``raws`` may be :func:`_suspect`, looked at in C loops: the usual
    batch of short JSON without a null or an escape ends here."""
    if max(map(len, raws), default=0) >= _SHORT:
        return True
    blob = b"\n".join(raws)
    return b"null" in blob or b"\\u" in blob


_SHORT = 300  # bytes: JSON shorter cannot nest 150 levels deep nor hold a long number


def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinite float in ``value`` (a model dumped to Python
    objects), or None. Only called when params already failed a cheaper check."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} = {value}"
    if isinstance(value, dict):
        paths: Iterable[tuple[str, Any]] = ((f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        paths = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for where, item in paths:
        found = _non_finite(item, where)
        if found:
            return found
    return None


class ParamsCodec:
    """The keys, JSON and checks of one job class's ``Params`` (built once per class)."""

    def __init__(self, owner: str, model: type[BaseModel], options: Iterable[str]) -> None:
        self.owner = owner  # the job class, as messages name it
        self.model = model
        # None: the model keeps unknown keys as extra params, so there are none to refuse
        self.keys = None if model.model_config.get("extra") == "allow" else accepted_keys(model)
        self.options = sorted(options)
        self._to_json = model.__pydantic_serializer__.to_json
        if any(f.alias or f.serialization_alias for f in model.model_fields.values()):
            # written under the names the worker's parser reads them by: their aliases,
            # unless the model validates by name only
            by_alias = bool(model.model_config.get("validate_by_alias", True))
            self._to_json = functools.partial(self._to_json, by_alias=by_alias)
        self._to_python = model.__pydantic_serializer__.to_python
        self._read = model.model_validate_json
        self.plain = round_trips(model)
        self._list: TypeAdapter[list[BaseModel]] | None = None
        self._read_list: TypeAdapter[list[BaseModel]] | None = None

    # -- keys ------------------------------------------------------------------------------

    def check_keys(self, params: Mapping[Any, Any]) -> None:
        """Refuse keys that are neither fields nor, for a model with ``extra="allow"``,
        kept as extra params (pydantic would drop them without a word): a
        ``ValidationError``, as for any other invalid params, naming each key and the
        option or field it resembles."""
        if self.keys is not None and not self.keys.issuperset(params):
            raise self._unknown(params, [k for k in params if k not in self.keys])

    def _unknown(
        self, params: Mapping[Any, Any], unknown: Sequence[Any], where: tuple[int, ...] = ()
    ) -> ValidationError:
        assert self.keys is not None
        model = f"{self.owner}.Params"
        errors: list[InitErrorDetails] = []
        for key in unknown:
            if key in self.options:
                detail = "a dispatch option, not a param: give it apart from the params"
            else:
                detail = f"neither a field of {model} nor a dispatch option{self._hint(key)}"
            # the text goes in the context: a template's own braces would be formatted
            error = PydanticCustomError("unknown_param", "{detail}", {"detail": detail})
            errors.append(InitErrorDetails(type=error, loc=(*where, key), input=params[key]))
        return ValidationError.from_exception_data(model, errors)

    def _hint(self, key: Any) -> str:
        """The option or field ``key`` looks like a misspelling of, else what there is."""
        assert self.keys is not None
        fields = sorted(self.keys)
        if isinstance(key, str):
            if near := difflib.get_close_matches(key, self.options, n=1):
                return f": did you mean the option {near[0]!r}?"
            if near := difflib.get_close_matches(key, fields, n=1):
                return f": did you mean the field {near[0]!r}?"
        return f" (fields: {', '.join(fields) or 'none'}; options: {', '.join(self.options)})"

    # -- one job ---------------------------------------------------------------------------

    def encode(self, model: BaseModel, limit: int) -> bytes:
        """``model`` as the JSON stored for a worker; raises :class:`SerializationError`
        when a worker could not read it back as it is, :class:`PayloadTooLarge` when it
        is over ``limit`` bytes."""
        raw = self._json(model, "params")
        if len(raw) > limit:
            raise PayloadTooLarge(f"params of {self.owner}", len(raw), limit)
        if self.plain and not _suspect(raw):
            return raw
        self._read_back(raw, model, "params")
        return raw

    def _read_back(self, raw: bytes, model: BaseModel, what: str) -> None:
        """Read ``raw`` as a worker will; raise :class:`SerializationError` if it fails
        or lost a float (see the module doc)."""
        try:
            back = self._read(raw)
        except ValidationError as exc:
            raise self._unreadable(model, exc, what) from exc
        if b"null" in raw and back != model:
            self._check_finite(model, what)

    def _json(self, model: BaseModel, what: str) -> bytes:
        try:
            return self._to_json(model)
        except PydanticSerializationError as exc:  # e.g. a lone surrogate, nesting > 255
            raise SerializationError(
                f"{what} of {self.owner} cannot be written as JSON: {exc}"
            ) from exc

    def _check_finite(self, model: BaseModel, what: str) -> None:
        found = _non_finite(self._to_python(model), "")
        if found:
            raise SerializationError(
                f"{what} of {self.owner} hold a float that JSON cannot: {found.lstrip('.')} "
                "(NaN and infinity would reach the worker as null)"
            )

    def _unreadable(self, model: BaseModel, exc: ValidationError, what: str) -> Exception:
        self._check_finite(model, what)  # the likelier cause, with a plainer message
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return SerializationError(
            f"{what} of {self.owner} would not be readable by a worker: {first['msg']}"
            + (f" (at {where})" if where else "")
        )

    # -- many jobs -------------------------------------------------------------------------

    def validate_many(self, items: Sequence[Mapping[str, Any]]) -> list[BaseModel]:
        """Validate a list of params mappings in one pydantic-core call (an error names
        the item by its index); unknown keys are refused first, as for one job."""
        keys = self.keys
        if keys is not None:
            try:
                clean = all(map(keys.issuperset, items))  # a loop in C: the usual case
            except TypeError:  # an item that is not even iterable
                clean = False
            if not clean:  # find the culprit; pydantic explains items that are no mapping
                for i, item in enumerate(items):
                    if isinstance(item, Mapping) and not keys.issuperset(item):
                        raise self._unknown(item, [k for k in item if k not in keys], (i,))
        if self._list is None:
            item_type: Any = self.model
            self._list = TypeAdapter(list[item_type])
        return self._list.validate_python(items)

    def encode_many(self, models: Sequence[BaseModel], limit: int) -> list[bytes]:
        """:meth:`encode` for many models; the read-back is one pydantic-core call that
        parses each item's JSON on its own, as a worker will."""
        try:
            raws = list(map(self._to_json, models))
        except PydanticSerializationError:
            for i, model in enumerate(models):  # which one, for the message
                self._json(model, f"params[{i}]")
            raise
        if raws and max(map(len, raws)) > limit:
            i = next(i for i, raw in enumerate(raws) if len(raw) > limit)
            raise PayloadTooLarge(f"params[{i}] of {self.owner}", len(raws[i]), limit)
        if self.plain:  # read back only what may not round-trip
            if not _batch_suspect(raws):
                return raws
            for i, (raw, model) in enumerate(zip(raws, models, strict=True)):
                if _suspect(raw):
                    self._read_back(raw, model, f"params[{i}]")
            return raws
        if self._read_list is None:
            item_type: Any = self.model
            self._read_list = TypeAdapter(list[Json[item_type]])
        try:
            back = self._read_list.validate_python(raws)
        except ValidationError as exc:
            i = int(exc.errors()[0]["loc"][0])
            try:
                self._read(raws[i])
            except ValidationError as item_exc:
                raise self._unreadable(models[i], item_exc, f"params[{i}]") from exc
            raise  # pragma: no cover (the item read alone fails as it did in the list)
        if b"null" in b"\n".join(raws):
            for i, (raw, model, again) in enumerate(zip(raws, models, back, strict=True)):
                if b"null" in raw and again != model:
                    self._check_finite(model, f"params[{i}]")
        return raws
