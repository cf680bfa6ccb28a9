"""A mypy plugin that checks ``SomeJob.dispatch(...)`` and ``SomeJob.delay(...)``
against the job's params model: each field a parameter of its type, required unless it
has a default, beside the methods' own options. Enable it in the mypy config, next to
pydantic's plugin if you use that::

    [tool.mypy]
    plugins = ["pydantic.mypy", "jobkit.mypy"]

Why a plugin: ``BaseJob.dispatch`` is one classmethod, defined once on ``BaseJob``, and
a classmethod's parameters are fixed where it is defined. Typing can parameterise it by
the params *model* (``BaseJob[ResizeParams]`` types ``self.params``), but no type
operator turns a model's fields into parameters: a ``ParamSpec`` is only bound from a
callable passed in (as ``@jobkit.task`` binds it from the function it decorates), a
class's type parameter is not a callable, and the nested ``class Params`` spelling has
no type parameter at all. The options (``delay=``, ``queue=`` ...) are keyword-only,
which ``Concatenate`` cannot add either. So the signature is made here, per call, from
what mypy knows of the model.

What the plugin reads, and why it leaves a signature as it is when unsure:

- the params model: the job class's ``BaseJob[Model]`` argument or its ``Params``
  class, the first found along the MRO (a subclass inherits its parent's), as
  ``BaseJob.__init_subclass__`` finds it; ``NoParams`` when no class names one.
- the fields: what mypy's ``dataclass_transform`` support (or pydantic's plugin, when
  enabled) records of the model, their types as the model's attributes declare them.
  Each field is called by its alias when it has one, as pydantic validates it.
- the model's config, recorded while mypy analyses each model class (a model read from
  mypy's cache has no body left to read): ``extra="allow"`` keeps ``**params: Any``;
  ``populate_by_name`` / ``validate_by_name`` makes both names of an aliased field
  optional; an ``alias_generator``, a ``validation_alias`` or a config that is not
  literal leaves the signature unchecked, as a wrong guess would refuse a valid call.

Nothing in jobkit imports this module: it imports mypy, a development dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from mypy.expandtype import expand_type_by_instance
from mypy.maptype import map_instance_to_supertype
from mypy.nodes import (
    ARG_NAMED,
    ARG_NAMED_OPT,
    ARG_OPT,
    ARG_POS,
    ARG_STAR,
    ARG_STAR2,
    AssignmentStmt,
    CallExpr,
    ClassDef,
    DictExpr,
    Expression,
    NameExpr,
    StrExpr,
    TypeAlias,
    TypeInfo,
    Var,
)
from mypy.plugin import ClassDefContext, MethodSigContext, Plugin, ReportConfigContext
from mypy.types import (
    AnyType,
    CallableType,
    FunctionLike,
    Instance,
    ProperType,
    Type,
    TypeOfAny,
    TypeType,
    TypeVarType,
    get_proper_type,
)
from mypy.typevars import fill_typevars_with_any

BASE_JOB = "jobkit.job.BaseJob"
NO_PARAMS = "jobkit.job.NoParams"
BASE_MODEL = "pydantic.main.BaseModel"
# the methods whose ``**params`` are the model's fields; ``*args`` too, for ``delay``
METHODS = frozenset({"dispatch", "delay"})
CONFIG_KEY = "jobkit"  # this plugin's entry in a model class's mypy metadata
# what each plugin records of a model's fields, pydantic's first: with its plugin
# enabled, mypy's dataclass_transform support does not run on models
FIELD_RECORDS = (("pydantic-mypy-metadata", "fields"), ("dataclass", "attributes"))
UNSURE = "?"


class Field(NamedTuple):
    """One keyword a job's params take: its name, type, and whether it may be left out."""

    name: str
    type: Type
    optional: bool


class JobkitPlugin(Plugin):
    """Gives ``dispatch`` and ``delay`` of each ``BaseJob`` subclass its fields."""

    def get_method_signature_hook(
        self, fullname: str
    ) -> Callable[[MethodSigContext], FunctionLike] | None:
        # mypy names a method called on a class by that class (``app.Resize.dispatch``),
        # not by BaseJob, which defines it: match the method's name, then the class
        owner, _, method = fullname.rpartition(".")
        if method not in METHODS:
            return None
        found = self.lookup_fully_qualified(owner)
        if found is not None and isinstance(found.node, TypeInfo):
            return self._signature if found.node.has_base(BASE_JOB) else None
        return self._signature  # a class mypy cannot look up (local): the hook checks

    def get_customize_class_mro_hook(self, fullname: str) -> Callable[[ClassDefContext], None]:
        # the one hook mypy calls for every class while its body is at hand (the others
        # go to the first plugin that wants them, pydantic's for models): used to record
        # the config, not to change the MRO
        return _record_config

    def report_config_data(self, ctx: ReportConfigContext) -> dict[str, int]:
        """Part of mypy's cache key: a cache whose models were recorded in another format
        (by another version of this plugin) is not reused. Bump it when the format changes."""
        return {"config_format": 1}

    def _signature(self, ctx: MethodSigContext) -> FunctionLike:
        sig = ctx.default_signature
        info = _job_class(ctx.type)
        if info is None or not info.has_base(BASE_JOB) or ARG_STAR2 not in sig.arg_kinds:
            return sig  # not a job class, or a method overridden with parameters of its own
        model = self._params_model(info)
        fields = _fields(model) if model is not None else None
        if model is None or fields is None:
            return sig  # the model, or its fields, unknown to mypy: unchecked as before
        return _with_fields(sig, fields, keep_extra=_config(model.type).get("extra") == "allow")

    def _params_model(self, info: TypeInfo) -> Instance | None:
        """The params model ``BaseJob.__init_subclass__`` gives ``info``, if mypy can tell."""
        base_job = self.lookup_fully_qualified(BASE_JOB)
        if base_job is None or not isinstance(base_job.node, TypeInfo):
            return None
        for cls in info.mro:
            if cls.fullname == BASE_JOB:
                no_params = self.lookup_fully_qualified(NO_PARAMS)
                node = no_params.node if no_params is not None else None
                return Instance(node, []) if isinstance(node, TypeInfo) else None
            # the class's own BaseJob[Model] (or a generic job class's [Model]): a base
            # without arguments is a job class, whose params come next in the MRO
            for base in cls.bases:
                if base.args and base.type.has_base(BASE_JOB):
                    args = map_instance_to_supertype(base, base_job.node).args
                    model = get_proper_type(args[0]) if args else None
                    if isinstance(model, Instance) and _is_model(model.type):
                        return model
            if "Params" in cls.names:
                return _model_of(cls.names["Params"].node)
        return None


def plugin(version: str) -> type[Plugin]:
    """The entry point mypy calls."""
    return JobkitPlugin


# -- the class called on -------------------------------------------------------------


def _job_class(typ: ProperType) -> TypeInfo | None:
    """The class of ``Resize.dispatch``, ``cls.dispatch`` or ``job.dispatch``."""
    if isinstance(typ, CallableType) and typ.is_type_obj():
        return typ.type_object()
    if isinstance(typ, TypeType):
        typ = typ.item
    if isinstance(typ, TypeVarType):  # cls: type[Self], or a bound TypeVar
        typ = get_proper_type(typ.upper_bound)
    return typ.type if isinstance(typ, Instance) else None


def _is_model(info: TypeInfo) -> bool:
    return info.has_base(BASE_MODEL) and info.fullname != BASE_MODEL


def _model_of(node: object) -> Instance | None:
    """The model a class's ``Params`` names: a nested class or an alias of a model."""
    if isinstance(node, TypeInfo) and _is_model(node):
        filled = fill_typevars_with_any(node)
        return filled if isinstance(filled, Instance) else None
    if isinstance(node, TypeAlias):
        target = get_proper_type(node.target)
        if isinstance(target, Instance) and _is_model(target.type):
            return target
    return None  # a variable (``Params: type[BaseModel] = make()``): mypy cannot tell


# -- the model's fields --------------------------------------------------------------


def _fields(model: Instance) -> list[Field] | None:
    """The keywords ``model`` validates, in declaration order; None when unsure."""
    config = _config(model.type)
    if UNSURE in config.values():
        return None
    for meta_key, list_key in FIELD_RECORDS:
        if meta_key in model.type.metadata:
            records = model.type.metadata[meta_key].get(list_key, [])
            if isinstance(records, dict):  # pydantic's: by name, in declaration order
                records = list(records.values())
            break
    else:
        return None
    by_name = config.get("by_name") is True
    by_alias = config.get("by_alias") is not False
    fields: list[Field] = []
    for record in records:
        if record.get("is_in_init") is False:
            continue  # BaseModel's own __pydantic_*__ attributes
        if record.get("has_dynamic_alias"):
            return None
        name, alias = record["name"], record.get("alias")
        typ = _declared_type(model, name)
        optional = bool(record["has_default"])
        if alias is None or alias == name:
            fields.append(Field(name, typ, optional))
            continue
        # both names are accepted: one is needed, which no signature says
        both = by_name and by_alias
        if by_alias:
            fields.append(Field(alias, typ, optional or both))
        if by_name or not by_alias:
            fields.append(Field(name, typ, optional or both))
    return fields


def _declared_type(model: Instance, name: str) -> Type:
    """The type a model's attribute declares, its type variables as ``model`` fills them."""
    found = model.type.get(name)
    node = found.node if found is not None else None
    if not isinstance(node, Var) or node.type is None or node.info is None:
        return AnyType(TypeOfAny.unannotated)
    owner = map_instance_to_supertype(model, node.info)
    return expand_type_by_instance(node.type, owner)


def _with_fields(sig: CallableType, fields: list[Field], *, keep_extra: bool) -> CallableType:
    """``sig`` with its ``*args`` / ``**params`` replaced by ``fields``: positional or
    keyword where it took ``*args`` (Celery's ``delay``), else keyword-only."""
    taken = {name for name in sig.arg_names if name is not None}
    if len({f.name for f in fields} | taken) != len(fields) + len(taken):
        return sig  # a field named like an option: the class itself fails at import
    positional = ARG_STAR in sig.arg_kinds
    kinds, names, types = [], [], []
    own = list(zip(sig.arg_kinds, sig.arg_names, sig.arg_types, strict=True))
    for kind, name, typ in own:
        if kind.is_positional():
            kinds.append(kind)
            names.append(name)
            types.append(typ)
    after_optional = False
    for field in fields:
        if positional:
            # a model may declare a required field after one with a default, a signature
            # may not (mypy would name the wrong one missing): optional from there on
            after_optional = after_optional or field.optional
            kinds.append(ARG_OPT if after_optional else ARG_POS)
        else:
            kinds.append(ARG_NAMED_OPT if field.optional else ARG_NAMED)
        names.append(field.name)
        types.append(field.type)
    for kind, name, typ in own:
        if kind.is_named() or (kind == ARG_STAR2 and keep_extra):
            kinds.append(kind)
            names.append(name)
            types.append(typ)
    return sig.copy_modified(arg_kinds=kinds, arg_names=names, arg_types=types)


# -- the model's config, recorded while mypy reads the class -------------------------


def _record_config(ctx: ClassDefContext) -> None:
    info = ctx.cls.info
    if info.has_base(BASE_MODEL):
        info.metadata[CONFIG_KEY] = _config_in(ctx.cls)


def _config(info: TypeInfo) -> dict[str, Any]:
    """A model's config as pydantic merges it: each class's over its bases'."""
    merged: dict[str, Any] = {}
    for cls in reversed(info.mro):
        merged.update(cls.metadata.get(CONFIG_KEY, {}))
    return merged


def _config_in(defn: ClassDef) -> dict[str, Any]:
    """What the class body sets of the config that decides which keywords validate."""
    found: dict[str, Any] = {}
    for stmt in defn.defs.body:
        if isinstance(stmt, AssignmentStmt):
            targets = {lv.name for lv in stmt.lvalues if isinstance(lv, NameExpr)}
            if "model_config" in targets:
                items = _literal_items(stmt.rvalue)
                if items is None:
                    return {"unsure": UNSURE}
                found.update(_settings(items))
            elif isinstance(stmt.rvalue, CallExpr) and "validation_alias" in stmt.rvalue.arg_names:
                return {"unsure": UNSURE}
        elif isinstance(stmt, ClassDef) and stmt.name == "Config":  # pydantic 1's spelling
            items = []
            for inner in stmt.defs.body:
                if isinstance(inner, AssignmentStmt):
                    items += [(lv.name, inner.rvalue) for lv in inner.lvalues
                              if isinstance(lv, NameExpr)]  # fmt: skip
            found.update(_settings(items))
    return found


def _literal_items(expr: Expression) -> list[tuple[str, Expression]] | None:
    """The keys and values of ``ConfigDict(k=v)`` or ``{"k": v}``; None if not literal."""
    if isinstance(expr, CallExpr):
        names = expr.arg_names
        if any(name is None for name in names):
            return None  # ConfigDict(**shared)
        return [(name, arg) for name, arg in zip(names, expr.args, strict=True) if name]
    if isinstance(expr, DictExpr):
        if not all(isinstance(key, StrExpr) for key, _ in expr.items):
            return None
        return [(key.value, value) for key, value in expr.items if isinstance(key, StrExpr)]
    return None


def _settings(items: list[tuple[str, Expression]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in items:
        if key == "extra":
            found["extra"] = value.value if isinstance(value, StrExpr) else UNSURE
        elif key in ("populate_by_name", "validate_by_name"):
            found["by_name"] = _flag(value)
        elif key == "validate_by_alias":
            found["by_alias"] = _flag(value)
        elif key == "alias_generator":  # its names are only known when it runs
            none = isinstance(value, NameExpr) and value.name == "None"
            found["alias_generator"] = None if none else UNSURE
    return found


def _flag(expr: Expression) -> bool | str:
    if isinstance(expr, NameExpr) and expr.name in ("True", "False"):
        return expr.name == "True"
    return UNSURE
