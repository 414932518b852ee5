"""moto's costliest DynamoDB steps done the cheap way, with the same outcomes: the emulator's cost, not ours.

Installed by ``local.aws_emulation.serialize_dynamodb`` (under its lock), for the local stack, the
tests and the benchmarks. Real DynamoDB does this work on its own servers; in moto it ran in the
caller's process, and it was most of the runner tick benchmark's wall time (``bench.runner_tick``)
and a good share of the test suite's. ``tests/unit/local/test_moto_shortcuts.py`` runs each shortcut
against moto's own path and compares answers, items and errors.

- ``plain_updates_without_parsing``: moto parses, validates and executes every update expression
  through a general AST (a lexer, a dozen tree walks, a deep copy of the item kept for streams). For
  the updates this backend sends most, ``SET #a = :a, #b = :b ... REMOVE #c, #d`` on top-level
  attributes, that was 2-7 ms of CPU per update on this machine: a live order's claim and settle
  spent some 12 ms in it. Those are applied directly to moto's item, with moto's own condition
  evaluation, size limit and errors. Anything else goes to moto unchanged: other clauses (ADD,
  DELETE), functions (``if_not_exists``, ``list_append``), arithmetic, nested paths, bare attribute
  names, a placeholder the request does not define, an attribute named twice, a table key
  attribute, an index key set empty or to another type, a set value, legacy ``AttributeUpdates`` or
  ``Expected``, or a table with a stream.
- ``items_sized_once``: an item's size limit checked once when it is built, not once per attribute.
- ``conditions_lexed_once``: a condition expression's text split into tokens once per distinct text
  (this backend sends a few dozen templates), not on every request.
- ``backends_found_once`` (moto's server, every service): the backend that serves a Host header found
  once per host, not on every request.
- ``actions_listed_once`` (every service): a handler class's method names listed once per class, not on
  every request.
- ``update_names_parsed_once``: the update expression's placeholders, which moto's UpdateItem and
  TransactWriteItems handlers check against the request's names and values, read off one parse per
  distinct text (the backend still parses each update it applies through moto's general path).
- ``conditions_parsed_once``: a request's condition expression parsed once, by the handler that checks
  its placeholders, and that tree evaluated by the shortcuts above, not parsed again.
- ``attribute_values_serialized_directly``: an answer's attribute values (every item of a GetItem,
  BatchGetItem, Query, Scan) written as the dicts they already are, not member by member through
  moto's generic serializer.

Each was checked against moto 5.2.5 (``requirements/emulators.txt``); each checks the shape of what it
replaces when installed and raises ``MotoShortcutMismatch`` when moto no longer looks that way.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

__all__ = ["MotoShortcutMismatch", "actions_listed_once", "attribute_values_serialized_directly",
           "backends_found_once", "conditions_lexed_once", "conditions_parsed_once",
           "failed_condition", "items_sized_once", "plain_update", "plain_updates_without_parsing",
           "update_names_parsed_once"]

CHECKED_AGAINST = "moto 5.2.5"


class MotoShortcutMismatch(RuntimeError):
    """moto no longer looks as a shortcut expects: the shortcut is not installed, and says what changed."""

    def __init__(self, shortcut: str, what: str):
        super().__init__(f"local.moto_shortcuts.{shortcut} (checked against {CHECKED_AGAINST}): {what}; "
                         "look again at moto's code before changing or removing the shortcut")

_ASSIGNMENTS = r"#\w+ = :\w+(?:, #\w+ = :\w+)*"
_REMOVALS = r"#\w+(?:, #\w+)*"
_PLAIN = re.compile(rf"(?:SET (?P<set>{_ASSIGNMENTS}))?(?: ?REMOVE (?P<remove>{_REMOVALS}))?")
# Value types moto's validator takes as they are; sets (SS, NS, BS) have emptiness rules of their own.
_PLAIN_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L"})
# moto's item-size limit (``moto.dynamodb.models.dynamo_type.LimitedSizeDict``, a literal there).
ITEM_BYTES_LIMIT = 405_000


def plain_update(expression: str | None, names: dict[str, str] | None,
                 values: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]] | None:
    """``expression`` as (attribute -> value to set, attributes to remove), or None when it is anything
    but plain top-level assignments and removals through defined placeholders, each attribute once."""
    match = _PLAIN.fullmatch(expression or "")
    if not expression or match is None:
        return None
    names, values = names or {}, values or {}
    pairs = [pair.split(" = ") for pair in match["set"].split(", ")] if match["set"] else []
    removed = match["remove"].split(", ") if match["remove"] else []
    if any(name not in names for name in [name for name, _ in pairs] + removed):
        return None
    if any(value not in values or not _plain_value(values[value]) for _, value in pairs):
        return None
    assigned = {names[name]: values[value] for name, value in pairs}
    gone = [names[name] for name in removed]
    if len(assigned) + len(set(gone)) != len(pairs) + len(removed) or set(assigned) & set(gone):
        return None
    return assigned, gone


def failed_condition(item: Any, condition: str | None, names: Any, values: Any,
                     return_old: str | None) -> tuple[bool, dict[str, Any] | None]:
    """Whether ``condition`` fails on moto's ``item`` (None: absent), with the item as DynamoDB returns it
    then (``ReturnValuesOnConditionCheckFailure`` ALL_OLD and an item, else None)."""
    from moto.dynamodb.comparisons import get_filter_expression

    if condition is None:
        return False, None
    tree = _CHECKED_CONDITIONS.pop(_condition_key(condition, names, values), None)
    if tree is None:
        tree = get_filter_expression(condition, names, values)
    if tree.expr(item):
        return False, None
    return True, item.to_json()["Attributes"] if return_old == "ALL_OLD" and item else None


# Condition trees moto's DynamoDB handlers built to check a request's placeholders, by (text, names,
# values), each kept for the one evaluation of the same request (``conditions_parsed_once``).
_CHECKED_CONDITIONS: dict[str, Any] = {}
_CHECKED_KEPT = 64
# Lexed conditions and parsed update expressions kept, by distinct text (``_kept``): this backend sends a few
# dozen templates; a test, or a long-running local stack poked by hand, may send many.
_TREES_KEPT = 4096


def _kept(kept: dict[str, Any], text: str, make: Callable[[], Any]) -> Any:
    """``kept[text]``, made by ``make()`` when missing (an error it raises keeps nothing); past
    ``_TREES_KEPT`` texts, those kept are dropped first."""
    if text not in kept:
        if len(kept) >= _TREES_KEPT:
            kept.clear()
        kept[text] = make()
    return kept[text]


def _condition_key(condition: str | None, names: Any, values: Any) -> str:
    """The text with its names and values, as one exact key (their repr: str, bytes, bool, lists, dicts)."""
    return repr((condition, names, values))


def _plain_value(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and type_of(value) in _PLAIN_TYPES


def type_of(value: dict[str, Any]) -> str:
    """The type letter of one attribute value in the wire form, ``{"S": "text"}`` -> ``"S"``."""
    return next(iter(value))


def plain_updates_without_parsing() -> None:
    """Replace moto's ``DynamoDBBackend.update_item`` with one that applies plain updates directly."""
    from moto.dynamodb.exceptions import ConditionalCheckFailed, ItemSizeToUpdateTooLarge
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    general = DynamoDBBackend.update_item
    if getattr(general, "_klineo_plain", False):
        return

    def check(item: Any, condition: str | None, names: Any, values: Any, return_old: str | None) -> None:
        failed, old = failed_condition(item, condition, names, values, return_old)
        if failed:
            raise ConditionalCheckFailed(item=old)

    def size(key: str, value: Any) -> int:
        """An attribute's part of moto's item-size limit (``LimitedSizeDict``)."""
        return bytesize(key) + value.size()

    def apply(item: Any, assigned: dict[str, Any], gone: list[str]) -> None:
        """Set then remove, checking moto's size limit as its ``LimitedSizeDict`` does on each set (the
        item as it stands, the replaced value still counted, plus the new one), summed once."""
        total = sum(size(name, value) for name, value in item.attrs.items())
        for name, value in assigned.items():
            typed = DynamoType(value)
            if total + size(name, typed) > ITEM_BYTES_LIMIT:
                raise ItemSizeToUpdateTooLarge()
            total += size(name, typed) - (size(name, item.attrs[name]) if name in item.attrs else 0)
        for name, value in assigned.items():
            dict.__setitem__(item.attrs, name, DynamoType(value))
        for name in gone:
            item.attrs.pop(name, None)

    def keys_kept(table: Any, assigned: dict[str, Any], gone: list[str]) -> bool:
        """No table key touched, and every index key set to a non-empty value of its declared type."""
        if set(table.table_key_attrs) & {*assigned, *gone}:
            return False
        declared = {attr["AttributeName"]: attr["AttributeType"] for attr in table.attr}
        return all(name not in declared or (type_of(value) == declared[name] and next(iter(value.values())))
                   for name, value in assigned.items())

    def update_item(self: Any, table_name: str, key: dict[str, Any], update_expression: str | None,
                    expression_attribute_names: Any, expression_attribute_values: Any,
                    attribute_updates: Any = None, expected: Any = None,
                    condition_expression: str | None = None,
                    return_values_on_condition_check_failure: str | None = None) -> Any:
        table = self.get_table(table_name)
        plain = None if attribute_updates or expected or table.stream_shard is not None else plain_update(
            update_expression, expression_attribute_names, expression_attribute_values)
        if plain is None or not keys_kept(table, *plain):
            return general(self, table_name, key, update_expression, expression_attribute_names,
                           expression_attribute_values, attribute_updates, expected, condition_expression,
                           return_values_on_condition_check_failure)
        item = self.get_item(table_name, key)
        check(item, condition_expression, expression_attribute_names, expression_attribute_values,
              return_values_on_condition_check_failure)
        if item is None:
            table.put_item(dict(key))
            item = self.get_item(table_name, key)
        apply(item, *plain)
        return item

    update_item._klineo_plain = True  # type: ignore[attr-defined]
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]


def items_sized_once() -> None:
    """moto's ``Item`` built with its size limit checked once, not once per attribute.

    ``LimitedSizeDict`` re-sums the whole item on every attribute set, so building an item of n
    attributes (every put, every item read back for a transaction's rollback) sized it n times over.
    Sizes are never negative, so the whole item is over the limit exactly when some prefix of it is:
    one check of the total refuses the same items with the same error.
    """
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    if getattr(Item.__init__, "_klineo_sized_once", False):
        return

    def __init__(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key, self.range_key = hash_key, range_key
        typed = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(bytesize(key) + value.size() for key, value in typed.items()) > ITEM_BYTES_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = LimitedSizeDict()
        dict.update(self.attrs, typed)

    __init__._klineo_sized_once = True  # type: ignore[attr-defined]
    Item.__init__ = __init__  # type: ignore[method-assign]


def conditions_lexed_once() -> None:
    """moto's condition-expression lexer run once per distinct expression text.

    Its tokens depend on the text alone (names and values are resolved by the later steps, which
    build new nodes and never change these), and lexing was the largest part of evaluating a
    condition. The tokens of each text are kept (``_kept``).
    """
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    lex = ConditionExpressionParser._lex_condition_expression
    if getattr(lex, "_klineo_once", False):
        return
    tokens: dict[str, tuple[Any, ...]] = {}

    def lexed(self: Any) -> deque[Any]:
        return deque(_kept(tokens, self.condition_expression, lambda: tuple(lex(self))))

    lexed._klineo_once = True  # type: ignore[attr-defined]
    ConditionExpressionParser._lex_condition_expression = lexed  # type: ignore[method-assign]


def backends_found_once() -> None:
    """moto's server finds the backend for a request's Host header once per distinct host.

    For every request its dispatcher lists moto's package folder (a stat of each of some 200 service
    folders) and tries every service's URL patterns, twice when the host names no service (ours are
    127.0.0.1:port, so the service is then read off the request's signature): about 1.6 ms of CPU per
    request on this machine, under the dispatcher's one lock, so no other request was served meanwhile.
    The answer depends on the host text alone (the folders and patterns are moto's, fixed while it runs).
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    find = DomainDispatcherApplication.get_backend_for_host
    if getattr(find, "_klineo_once", False):
        return
    found: dict[str | None, Any] = {}

    def backend_for_host(self: Any, host: str | None) -> Any:
        if host not in found:
            found[host] = find(self, host)
        return found[host]

    backend_for_host._klineo_once = True  # type: ignore[attr-defined]
    backend_for_host.__wrapped__ = find  # type: ignore[attr-defined]
    DomainDispatcherApplication.get_backend_for_host = backend_for_host  # type: ignore[method-assign]


def _installed(module: Any, name: str, motos: Any, shortcut: str) -> bool:
    """Whether ``module.name`` is the shortcut already (True), or moto's ``motos`` it replaces (False);
    anything else raises ``MotoShortcutMismatch``."""
    current = getattr(module, name, None)
    if getattr(current, "_klineo_once", False):
        return True
    if current is not motos:
        raise MotoShortcutMismatch(shortcut, f"{module.__name__}.{name} is no longer moto's "
                                   f"{getattr(motos, '__module__', '?')}.{getattr(motos, '__name__', name)}")
    return False


def actions_listed_once() -> None:
    """moto's handlers list their class's method names once per class, not on every request.

    ``BaseResponse.call_action`` (moto 5.2.5) runs ``method_names_from_class(self.__class__)``, an
    ``inspect.getmembers`` over the class and its bases (some 300 attributes, each looked up and
    tested, then sorted), to ask whether the request's action is one of them: on every request, of
    every service. The list depends on the class alone, so it is kept per class, with the count of
    attributes in each class of its MRO: a class given or losing an attribute (a test patching a
    handler) is listed again, so the answer is the one ``inspect.getmembers`` would give.
    """
    import moto.core.responses as core_responses
    from moto.core import utils

    listed_by_moto = utils.method_names_from_class
    if _installed(core_responses, "method_names_from_class", listed_by_moto, "actions_listed_once"):
        return
    listing = inspect.getsource(core_responses.BaseResponse.call_action)
    if "method_names_from_class(self.__class__)" not in listing:
        raise MotoShortcutMismatch("actions_listed_once",
                                   "BaseResponse.call_action no longer lists its own class's method names")
    listed: dict[type, tuple[tuple[int, ...], list[str]]] = {}

    def method_names_from_class(clazz: Any) -> list[str]:
        shape = tuple(len(vars(base)) for base in clazz.__mro__)
        kept = listed.get(clazz)
        if kept is None or kept[0] != shape:
            kept = listed[clazz] = (shape, listed_by_moto(clazz))
        return list(kept[1])

    method_names_from_class._klineo_once = True  # type: ignore[attr-defined]
    method_names_from_class.__wrapped__ = listed_by_moto  # type: ignore[attr-defined]
    core_responses.method_names_from_class = method_names_from_class  # type: ignore[attr-defined]


# What moto's DynamoDB handlers do with an update expression's tree (moto 5.2.5): each ``make`` gives
# ``update_expression_ast``, and that name is only ever read through ``find_clauses``.
_AST_MADE = re.compile(r"(\w+) = UpdateExpressionParser\.make\(")
_AST_USED = re.compile(r"\bupdate_expression_ast\b(\.\w+)?")


def update_names_parsed_once() -> None:
    """moto's DynamoDB handlers parse each distinct update expression text once.

    Before the backend runs an UpdateItem (and for every Update action of a TransactWriteItems), the
    handler parses the update expression with moto's full parser (a lexer, then a recursive-descent
    parser building a tree) only to list the placeholders it names, which it checks against the
    request's ``ExpressionAttributeNames``/``Values``; a transaction of two updates parsed both, on
    every request. The tree depends on the text alone and the handlers only read it (``find_clauses``,
    then each placeholder's name), so the tree of each text is kept and handed to them again. A text
    that does not parse raises moto's own error each time (nothing kept). The backend's own parse,
    which its validator then rewrites in place, is moto's as before (``moto.dynamodb.models`` is not
    touched): only ``moto.dynamodb.responses`` is given the kept trees.
    """
    import moto.dynamodb.responses as handlers
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    if _installed(handlers, "UpdateExpressionParser", UpdateExpressionParser, "update_names_parsed_once"):
        return
    source = inspect.getsource(handlers)
    made = _AST_MADE.findall(source)
    uses = _AST_USED.findall(source)
    if (not made or set(made) != {"update_expression_ast"}
            or source.count("UpdateExpressionParser.") != len(made)
            or set(uses) != {"", ".find_clauses"} or uses.count("") != len(made)):
        raise MotoShortcutMismatch("update_names_parsed_once",
                                   "moto's DynamoDB handlers use the parsed update expression for more than "
                                   "its placeholders")
    trees: dict[str, Any] = {}

    class ParsedOnce:
        """What ``moto.dynamodb.responses`` sees as ``UpdateExpressionParser``: ``make`` by text, kept."""

        _klineo_once = True
        parser = UpdateExpressionParser

        @staticmethod
        def make(text: str) -> Any:
            return _kept(trees, text, lambda: UpdateExpressionParser.make(text))

    handlers.UpdateExpressionParser = ParsedOnce  # type: ignore[attr-defined,misc]


# The attribute value's members and their shapes' types in botocore's DynamoDB model, as checked.
_ATTRIBUTE_VALUE_MEMBERS = {"S": "string", "N": "string", "B": "blob", "SS": "list", "NS": "list",
                            "BS": "list", "M": "map", "L": "list", "NULL": "boolean", "BOOL": "boolean"}
# Every character a transformer's key path may end with and still reach an attribute value's member.
_MEMBER_ENDINGS = frozenset(name[-1] for name in _ATTRIBUTE_VALUE_MEMBERS)
# sha256 (first 16 hex digits) of the source of moto's serializer steps that ``_plain_attribute_value``
# reproduces (``_SERIALIZER_STEPS``), as in moto 5.2.5: another text means moto changed them.
_SERIALIZER_SOURCE = "78e4d75b6bc8518c"
_SERIALIZER_STEPS = (
    "ResponseSerializer._serialize", "ResponseSerializer._default_serialize",
    "ResponseSerializer._serialize_type_structure", "ResponseSerializer._serialize_structure_member",
    "ResponseSerializer.get_value", "ResponseSerializer.get_serialized_name",
    "BaseJSONSerializer._serialize_type_structure", "BaseJSONSerializer._serialize_type_string",
    "BaseJSONSerializer._serialize_type_list", "BaseJSONSerializer._serialize_type_map",
    "AttributePicker.__call__", "AttributePicker.get_possible_keys",
    "XFormedAttributePicker.get_possible_keys",
    "ExplicitAlias", "ShapeNameAlias", "NoAlias", "ShapePrefixAlias", "ClassPrefixAlias", "ModelAlias",
)


def _plain_attribute_value(value: Any) -> dict[str, Any] | None:
    """``value`` as moto's JSON serializer writes a DynamoDB attribute value, or None when it is not one of
    the shapes this reproduces: one member of S, N (a str), BOOL, NULL (a bool), SS, NS (a list of str), or M,
    L of such values (M's names non-empty str). Binary values (B, BS) and anything else go to moto."""
    if type(value) is not dict or len(value) != 1:
        return None
    ((kind, inner),) = value.items()
    if kind in ("S", "N"):
        return {kind: inner} if type(inner) is str else None
    if kind in ("BOOL", "NULL"):
        return {kind: inner} if type(inner) is bool else None
    if kind in ("SS", "NS"):
        return {kind: list(inner)} if type(inner) is list and all(type(one) is str for one in inner) else None
    if kind == "M" and type(inner) is dict:
        entries = {}
        for name, entry in inner.items():
            written = _plain_attribute_value(entry) if type(name) is str and name else None
            if written is None:
                return None
            entries[name] = written
        return {kind: entries}
    if kind == "L" and type(inner) is list:
        elements = [_plain_attribute_value(element) for element in inner]
        return None if any(element is None for element in elements) else {kind: elements}
    return None


def _serializer_source() -> str:
    import hashlib

    from moto.core import serialize

    texts = []
    for step in _SERIALIZER_STEPS:
        found: Any = serialize
        for part in step.split("."):
            found = getattr(found, part)
        texts.append(inspect.getsource(found))
    texts.append(inspect.getsource(serialize.get_value))
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]


def attribute_values_serialized_directly() -> None:
    """moto's DynamoDB answers write each attribute value directly, not member by member.

    moto's JSON serializer writes an item's every attribute value as a botocore ``AttributeValue``
    structure: for each of its 10 members (S, N, B, SS, ... BOOL) it builds a picker context and asks
    six alias providers, then their snake_case forms, whether the value holds it: some 100 lookups
    for each attribute of each item. A BatchGetItem or Query of this backend's items spent most of
    the server's CPU there (45% of moto's process in the timed tick). Values are the wire form
    already (``DynamoResult`` made them dicts), so for those this reproduces (``_plain_attribute_value``:
    no binary, one member each, the same types moto writes as they are) the written value is the same
    dict, which is written in one step. Anything else, a DynamoDB key path that one of moto's response
    transformers could match, or a value picker other than moto's default, goes through moto's steps.

    Checked against moto 5.2.5 and botocore's DynamoDB model: the attribute value's members and types,
    the source of moto's serializer steps this reproduces (``_SERIALIZER_STEPS``) and its alias
    providers; any other raises ``MotoShortcutMismatch``.
    """
    from moto.core import serialize
    from moto.core.responses import get_service_model

    original = serialize.BaseJSONSerializer._serialize_type_structure
    if getattr(original, "_klineo_direct", False):
        return
    shape = get_service_model("dynamodb").shape_for("AttributeValue")
    members = {name: member.type_name for name, member in shape.members.items()}
    if members != _ATTRIBUTE_VALUE_MEMBERS or shape.serialization or any(
            member.serialization for member in shape.members.values()):
        raise MotoShortcutMismatch("attribute_values_serialized_directly",
                                   f"DynamoDB's AttributeValue shape is now {members}")
    providers = [provider.__name__ for provider in serialize.DEFAULT_ALIAS_PROVIDERS]
    if providers != ["ExplicitAlias", "ShapeNameAlias", "NoAlias", "ShapePrefixAlias", "ClassPrefixAlias",
                     "ModelAlias"]:
        raise MotoShortcutMismatch("attribute_values_serialized_directly", f"alias providers now {providers}")
    if _serializer_source() != _SERIALIZER_SOURCE:
        raise MotoShortcutMismatch("attribute_values_serialized_directly",
                                   "moto's JSON serializer steps changed (source hash "
                                   f"{_serializer_source()}, checked {_SERIALIZER_SOURCE})")
    picker = serialize.XFormedAttributePicker

    def direct(self: Any, value_picker: Any) -> bool:
        """moto's own picker, no transformer that could reach a member, moto's way of writing a value."""
        return (type(value_picker) is picker
                and value_picker.alias_providers is serialize.DEFAULT_ALIAS_PROVIDERS
                and not any(path[-1:] in _MEMBER_ENDINGS for path in value_picker.response_transformers)
                and type(self)._default_serialize is serialize.ResponseSerializer._default_serialize)

    def _serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (key and shape.name == "AttributeValue" and self.service_model.service_name == "dynamodb"
                and direct(self, self._value_picker)):
            written = _plain_attribute_value(value)
            if written is not None:
                serialized[self.get_serialized_name(shape, key)] = written
                return
        original(self, serialized, value, shape, key)

    _serialize_type_structure._klineo_direct = True  # type: ignore[attr-defined]
    _serialize_type_structure.__wrapped__ = original  # type: ignore[attr-defined]
    serialize.BaseJSONSerializer._serialize_type_structure = (  # type: ignore[method-assign]
        _serialize_type_structure)


# Each handler's condition parse is a bare statement: the tree it returns is dropped (moto 5.2.5).
_PARSER_MADE = re.compile(r"create_condition_expression_parser\(")
_PARSED_AND_DROPPED = re.compile(
    r"(\w+) = create_condition_expression_parser\([^()]*\)\n(?:\s*try:\n)?\s*\1\.parse\(\)\n")


def conditions_parsed_once() -> None:
    """A request's condition expression parsed once, not by its handler and again to evaluate it.

    moto's DynamoDB handlers (PutItem, DeleteItem, UpdateItem, each action of a TransactWriteItems)
    parse the condition only to check its placeholders against the request's names and values, and
    drop the tree; then ``failed_condition`` (this module's UpdateItem and TransactWriteItems paths)
    parsed the same text with the same names and values again to evaluate it: some 0.6 ms of the
    server's CPU per condition on this machine, two per order transaction. The tree depends on the
    text, names and values alone, and evaluating it reads it only (moto's ``Op``/``Func``/operand
    nodes set their fields in ``__init__`` and nowhere else), so the handler's tree is kept, under
    the exact key of all three, for the one ``failed_condition`` of that request, which takes it out;
    a condition parsed but not evaluated here (a Put, a Query's filter) is dropped after 64 others.
    """
    import moto.dynamodb.responses as handlers
    from moto.dynamodb.comparisons import create_condition_expression_parser

    if _installed(handlers, "create_condition_expression_parser", create_condition_expression_parser,
                  "conditions_parsed_once"):
        return
    source = inspect.getsource(handlers)
    made, dropped = len(_PARSER_MADE.findall(source)), len(_PARSED_AND_DROPPED.findall(source))
    if not dropped or made != dropped:
        raise MotoShortcutMismatch("conditions_parsed_once",
                                   "a DynamoDB handler now uses its condition parse's tree")

    def keeping_parser(condition: str | None, names: Any, values: Any) -> Any:
        parser = create_condition_expression_parser(condition, names, values)
        parse = parser.parse

        def parse_and_keep() -> Any:
            tree = parse()
            if condition:
                while len(_CHECKED_CONDITIONS) >= _CHECKED_KEPT:
                    _CHECKED_CONDITIONS.pop(next(iter(_CHECKED_CONDITIONS)))
                _CHECKED_CONDITIONS[_condition_key(condition, names, values)] = tree
            return tree

        parser.parse = parse_and_keep
        return parser

    keeping_parser._klineo_once = True  # type: ignore[attr-defined]
    keeping_parser.__wrapped__ = create_condition_expression_parser  # type: ignore[attr-defined]
    handlers.create_condition_expression_parser = keeping_parser  # type: ignore[attr-defined]
