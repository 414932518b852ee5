"""The emulated DynamoDB's shortcuts (``local.moto_shortcuts``): the same answers, items and errors as
moto's own paths, which anything a shortcut does not cover still reaches."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local.moto_shortcuts import plain_update

TABLES = ("plain", "moto")


@pytest.fixture
def dynamodb(emulated_aws: None) -> Any:
    client = boto3.client("dynamodb", region_name="ap-northeast-1")
    for table in TABLES:
        client.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"}
                                  for name in ("pk", "sk", "state")],
            GlobalSecondaryIndexes=[{"IndexName": "by-state", "Projection": {"ProjectionType": "ALL"},
                                     "KeySchema": [{"AttributeName": "state", "KeyType": "HASH"}]}],
        )
        client.put_item(TableName=table, Item={
            "pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1.50"}, "state": {"S": "on"},
            "book": {"M": {"entry": {"M": {"ids": {"L": [{"S": "x"}, {"N": "2"}]}}}}},
            "gone": {"S": "soon"}, "tags": {"SS": ["a", "b"]},
        })
    yield client


def _both(client: Any, expression: str, names: dict[str, str], values: dict[str, Any] | None = None,
          **extra: Any) -> list[Any]:
    """The same UpdateItem on both tables: the plain path for one, and moto's own for the other, reached by
    an expression moto treats alike (spaces doubled) which the plain path does not recognise."""
    outcomes = []
    sk = extra.pop("sk", "1")
    for table, text in zip(TABLES, (expression, expression.replace(" = ", "  =  ")), strict=True):
        request = {"TableName": table, "Key": {"pk": {"S": "a"}, "sk": {"S": sk}}, "UpdateExpression": text,
                   "ExpressionAttributeNames": names, **extra}
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            outcomes.append(client.update_item(**request, ReturnValues="ALL_NEW").get("Attributes"))
        except ClientError as refused:
            error = refused.response["Error"]
            outcomes.append((error["Code"], error["Message"], refused.response.get("Item")))
    items = [client.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"S": "1"}}).get("Item")
             for table in TABLES]
    return [outcomes, items]


def test_the_plain_path_takes_assignments_and_removals_only() -> None:
    """GIVEN expressions WHEN read THEN only top-level SET/REMOVE through defined placeholders, each
    attribute once and no set value, is plain; anything else is left to moto."""
    names, values = {"#a": "a", "#b": "b"}, {":a": {"N": "1"}, ":s": {"SS": ["x"]}}
    assert plain_update("SET #a = :a REMOVE #b", names, values) == ({"a": {"N": "1"}}, ["b"])
    assert plain_update("REMOVE #a, #b", names, values) == ({}, ["a", "b"])
    for other in ("SET #a = :a + :a", "ADD #a :a", "SET a = :a", "SET #a = :a REMOVE #a", "SET #c = :a",
                  "SET #a = :b", "SET #a = :s", "SET #a.#b = :a", "REMOVE #b SET #a = :a", ""):
        assert plain_update(other, names, values) is None, other


@pytest.mark.parametrize(("expression", "names", "values"), [
    ("SET #n = :n, #new = :new REMOVE #gone", {"#n": "n", "#new": "new", "#gone": "gone"},
     {":n": {"N": "2.000"}, ":new": {"M": {"k": {"L": [{"BOOL": True}, {"NULL": True}, {"B": b"\x01"}]}}}}),
    ("SET #book = :book", {"#book": "book"}, {":book": {"M": {}}}),
    ("REMOVE #missing", {"#missing": "missing"}, None),
    ("SET #state = :state", {"#state": "state"}, {":state": {"S": "off"}}),
    ("SET #state = :state", {"#state": "state"}, {":state": {"S": ""}}),
    ("SET #state = :state", {"#state": "state"}, {":state": {"N": "1"}}),
])
def test_a_plain_update_leaves_the_item_moto_leaves(dynamodb, expression, names, values) -> None:
    """GIVEN a plain update WHEN applied on both paths THEN the answers and stored items are the same."""
    (plain, general), items = _both(dynamodb, expression, names, values)
    assert plain == general
    assert items[0] == items[1]


@pytest.mark.parametrize(("expression", "names", "values", "extra"), [
    ("SET #n = :n", {"#n": "n", "#c": "n"}, {":n": {"N": "5"}, ":one": {"N": "9"}},
     {"ConditionExpression": "#c = :one", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}),
    ("SET #sk = :sk", {"#sk": "sk"}, {":sk": {"S": "2"}}, {}),
    ("SET #big = :big", {"#big": "big"}, {":big": {"S": "x" * 410_000}}, {}),
    ("SET #n = :n, #big = :big", {"#n": "n", "#big": "big"}, {":n": {"N": "4"}, ":big": {"S": "x" * 404_999}},
     {}),
])
def test_a_refused_update_is_refused_alike_and_writes_nothing(dynamodb, expression, names, values,
                                                              extra) -> None:
    """GIVEN an update DynamoDB refuses (its condition, a table key, an item too large) WHEN applied on
    both paths THEN the same error, and the item is as it was."""
    before = dynamodb.get_item(TableName="plain", Key={"pk": {"S": "a"}, "sk": {"S": "1"}})["Item"]
    (plain, general), items = _both(dynamodb, expression, names, values, **extra)
    assert isinstance(plain, tuple)
    assert plain == general
    assert items[0] == before


def test_a_plain_update_of_a_missing_item_creates_it_unless_its_condition_fails(dynamodb) -> None:
    """GIVEN no item WHEN updated plainly THEN made as moto makes it; with a failing condition, not made."""
    (plain, general), _ = _both(dynamodb, "SET #n = :n", {"#n": "n"}, {":n": {"N": "3"}}, sk="9")
    assert plain == general == {"pk": {"S": "a"}, "sk": {"S": "9"}, "n": {"N": "3"}}
    (plain, general), _ = _both(dynamodb, "SET #n = :n", {"#n": "n"}, {":n": {"N": "3"}}, sk="8",
                                ConditionExpression="attribute_exists(pk)")
    assert plain == general
    assert "Item" not in dynamodb.get_item(TableName="plain", Key={"pk": {"S": "a"}, "sk": {"S": "8"}})


def test_only_the_other_updates_reach_motos_update_item(dynamodb, monkeypatch) -> None:
    """GIVEN the parser moto's backend UpdateItem starts with, counted WHEN a plain and a general update
    run THEN only the general one reached it: the plain path is the one taken."""
    import moto.dynamodb.models as backend

    parsed = []
    parser = backend.UpdateExpressionParser

    class Counted:
        @staticmethod
        def make(text: str) -> Any:
            parsed.append(text)
            return parser.make(text)

    monkeypatch.setattr(backend, "UpdateExpressionParser", Counted)
    _both(dynamodb, "SET #n = :n", {"#n": "n"}, {":n": {"N": "7"}})
    assert parsed == ["SET #n  =  :n"]


def test_an_item_is_refused_for_its_size_as_moto_refuses_it(dynamodb) -> None:
    """GIVEN items just under and over moto's 405,000-byte limit WHEN put THEN the first is stored and the
    second refused with moto's error, as with its per-attribute check."""
    under = {"pk": {"S": "a"}, "sk": {"S": "u"}, "a": {"S": "x" * 200_000}, "b": {"S": "y" * 204_000}}
    dynamodb.put_item(TableName="plain", Item=under)
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName="plain", Item={**under, "sk": {"S": "o"}, "c": {"S": "z" * 1_000}})
    assert refused.value.response["Error"]["Message"] == "Item size has exceeded the maximum allowed size"
    assert dynamodb.get_item(TableName="plain", Key={"pk": {"S": "a"}, "sk": {"S": "u"}})["Item"] == under


def test_a_condition_text_is_lexed_once_and_judged_with_each_requests_values(dynamodb, monkeypatch) -> None:
    """GIVEN one condition text sent twice with different values WHEN evaluated THEN moto's lexer ran for
    the first only, and each was judged on its own values (one holds, one fails)."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    lexed = []
    lex_one = ConditionExpressionParser._lex_one_node
    monkeypatch.setattr(ConditionExpressionParser, "_lex_one_node",
                        lambda parser, text: lexed.append(text) or lex_one(parser, text))
    request = {"TableName": "plain", "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
               "UpdateExpression": "SET #gone = :gone", "ConditionExpression": "#state = :state",
               "ExpressionAttributeNames": {"#gone": "gone", "#state": "state"}}
    dynamodb.update_item(**request, ExpressionAttributeValues={":gone": {"S": "x"}, ":state": {"S": "on"}})
    first = len(lexed)
    with pytest.raises(ClientError) as refused:
        dynamodb.update_item(**request,
                             ExpressionAttributeValues={":gone": {"S": "y"}, ":state": {"S": "off"}})
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert first > 0 and len(lexed) == first
    item = dynamodb.get_item(TableName="plain", Key=request["Key"])["Item"]
    assert item["gone"] == {"S": "x"}


def test_the_lexed_condition_texts_kept_are_bounded(dynamodb, monkeypatch) -> None:
    """GIVEN more distinct condition texts than are kept WHEN a first one is sent again THEN it is lexed
    again (the kept tokens were dropped, not grown without bound) and still judged right."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    import local.moto_shortcuts as shortcuts

    lexed = []
    lex_one = ConditionExpressionParser._lex_one_node
    monkeypatch.setattr(ConditionExpressionParser, "_lex_one_node",
                        lambda parser, text: lexed.append(text) or lex_one(parser, text))
    monkeypatch.setattr(shortcuts, "_TREES_KEPT", 2)
    request = {"TableName": "plain", "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
               "UpdateExpression": "SET #gone = :gone",
               "ExpressionAttributeNames": {"#gone": "gone", "#state": "state"},
               "ExpressionAttributeValues": {":gone": {"S": "x"}, ":state": {"S": "on"}}}
    texts = [f"#state = :state{' AND #state = :state' * extra}" for extra in range(4)]
    for text in texts:
        dynamodb.update_item(**request, ConditionExpression=text)
    before = len(lexed)
    dynamodb.update_item(**request, ConditionExpression=texts[0])
    assert len(lexed) > before
    with pytest.raises(ClientError) as refused:
        dynamodb.update_item(**{**request, "ExpressionAttributeValues": {":gone": {"S": "y"},
                                                                         ":state": {"S": "off"}}},
                             ConditionExpression=texts[0])
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_shortcuts_a_fixture_undid_are_put_back_by_the_next_serialize(monkeypatch) -> None:
    """GIVEN moto's backend methods put back unmarked (a fixture wrapped them before the first
    ``serialize_dynamodb`` and its undo restored moto's own) WHEN ``serialize_dynamodb`` runs again THEN the
    plain-update and transaction shortcuts are in place again (before: the handler's lock, already there,
    made it return at once, and every later test ran moto's slow paths, these tests failing)."""
    from moto.dynamodb.models import DynamoDBBackend

    from local.aws_emulation import serialize_dynamodb

    serialize_dynamodb()
    for name in ("update_item", "transact_write_items"):
        installed = getattr(DynamoDBBackend, name)
        monkeypatch.setattr(DynamoDBBackend, name, lambda *args, __installed=installed, **kw: __installed(
            *args, **kw))

    serialize_dynamodb()

    assert getattr(DynamoDBBackend.update_item, "_klineo_plain", False)
    assert getattr(DynamoDBBackend.transact_write_items, "_klineo_no_table_copies", False)


def test_moto_servers_backend_for_a_host_is_the_one_moto_finds_and_found_once(monkeypatch) -> None:
    """GIVEN the shortcuts installed WHEN moto's server asks which backend serves a Host header THEN the
    answer is the one moto's own lookup gives, for a service's host, a bare name, ours (127.0.0.1:port) and
    none; asked again, it lists moto's service folders no more (before: twice per request)."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from local.aws_emulation import serialize_dynamodb

    serialize_dynamodb()
    dispatcher = DomainDispatcherApplication(create_app=lambda backend: None)
    find = DomainDispatcherApplication.get_backend_for_host
    hosts = (None, "moto_api", "dynamodb", "dynamodb.ap-northeast-1.amazonaws.com",
             "sqs.ap-northeast-1.amazonaws.com", "127.0.0.1:5000")
    expected = {host: find.__wrapped__(dispatcher, host) for host in hosts}
    assert expected["dynamodb.ap-northeast-1.amazonaws.com"] == "dynamodb"
    assert expected["127.0.0.1:5000"] is None
    assert {host: find(dispatcher, host) for host in hosts} == expected

    def listed() -> list[str]:
        raise AssertionError("moto's service folders listed again")

    monkeypatch.setattr(backends, "list_of_moto_modules", listed)
    assert {host: find(dispatcher, host) for host in hosts} == expected


def test_a_handlers_actions_are_the_ones_moto_lists_and_listed_once_per_class(monkeypatch) -> None:
    """GIVEN the shortcuts installed WHEN moto's handlers ask for their method names THEN the names moto's
    ``inspect.getmembers`` gives, listed once per class; a class given a method is listed again."""
    import inspect

    import moto.core.responses as core_responses
    from moto.dynamodb.responses import DynamoHandler
    from moto.sqs.responses import SQSResponse

    from local.aws_emulation import serialize_dynamodb

    serialize_dynamodb()
    listed = core_responses.method_names_from_class
    moto_lists = listed.__wrapped__
    for handler in (DynamoHandler, SQSResponse):
        assert listed(handler) == moto_lists(handler)
        assert "transact_write_items" in listed(DynamoHandler)
    getmembers, calls = inspect.getmembers, []
    monkeypatch.setattr(inspect, "getmembers",
                        lambda *args, **kw: calls.append(args[0]) or getmembers(*args, **kw))
    assert listed(DynamoHandler) == moto_lists.__call__(DynamoHandler)
    assert calls == [DynamoHandler]  # moto's own listing, called here: the shortcut's answer was kept

    class Extended(DynamoHandler):
        pass

    assert listed(Extended) == moto_lists(DynamoHandler)
    Extended.brand_new_action = lambda self: None
    assert "brand_new_action" in listed(Extended)


def _requests(table: str, mark: str) -> list[tuple[str, dict[str, Any]]]:
    """UpdateItem and TransactWriteItems requests on ``table``: accepted, refused by moto's placeholder
    checks, unparsable, and cancelled by a failing condition (``mark`` makes the texts new to any cache)."""
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    update = {"TableName": table, "Key": key, "UpdateExpression": f"SET #n = :n, #{mark} = :n",
              "ExpressionAttributeNames": {"#n": "n", f"#{mark}": mark}, "ExpressionAttributeValues": {
                  ":n": {"N": "3"}}}
    unused_name = {**update, "ExpressionAttributeNames": {**update["ExpressionAttributeNames"], "#x": "x"}}
    unused_value = {**update, "ExpressionAttributeValues": {":n": {"N": "3"}, ":x": {"N": "4"}}}
    unparsable = {**update, "UpdateExpression": f"SET #n = = :n, #{mark} = :n"}
    failing = {**update, "ConditionExpression": "#n = :n", "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
               "ExpressionAttributeValues": {":n": {"N": "9"}}}
    check = {"ConditionCheck": {"TableName": table, "Key": key,
                                "ConditionExpression": "attribute_exists(pk)"}}
    return [
        *(("update_item", request) for request in (update, unused_name, unused_value, unparsable, failing)),
        *(("transact_write_items", {"TransactItems": [check, {"Update": request}]})
          for request in (update, unused_name, unparsable, failing)),
        ("transact_write_items", {"TransactItems": [{"Update": update}, {"Update": {
            **update, "Key": {"pk": {"S": "a"}, "sk": {"S": "2"}},
            "ConditionExpression": "attribute_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}]}),
    ]


def _outcome(client: Any, action: str, request: dict[str, Any]) -> Any:
    """The answer or the error (with its cancellation reasons and item), the table's name left out."""
    try:
        answer = getattr(client, action)(**request)
    except ClientError as refused:
        answer = refused.response
        outcome = answer["Error"], answer.get("CancellationReasons"), answer.get("Item")
    else:
        outcome = {name: value for name, value in answer.items() if name != "ResponseMetadata"}
    return repr(outcome).replace("'plain'", "'moto'")


def test_update_expressions_parsed_once_give_motos_answers_and_errors(dynamodb, monkeypatch) -> None:
    """GIVEN UpdateItem and TransactWriteItems requests (accepted, an unused name or value, an unparsable
    expression, a failing condition) WHEN sent with the handlers' kept parses and then with moto's own
    parser on a twin table THEN the same answers, errors, cancellation reasons and items."""
    import moto.dynamodb.responses as handlers
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    assert getattr(handlers.UpdateExpressionParser, "_klineo_once", False)
    kept = [_outcome(dynamodb, action, request) for action, request in _requests("plain", "kept")]
    kept_again = [_outcome(dynamodb, action, request) for action, request in _requests("plain", "kept")]
    monkeypatch.setattr(handlers, "UpdateExpressionParser", UpdateExpressionParser)
    own = [_outcome(dynamodb, action, request) for action, request in _requests("moto", "kept")]
    assert kept == own
    assert kept_again == own
    assert all("ValidationException" in outcome for outcome in kept[1:4])
    assert "TransactionCanceledException" in kept[-1] and "ConditionalCheckFailed" in kept[-1]
    items = [dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"S": "1"}})["Item"]
             for table in TABLES]
    assert items[0] == items[1]


def test_an_update_expression_text_is_parsed_once_by_the_handlers(dynamodb, monkeypatch) -> None:
    """GIVEN moto's update parser counted WHEN the same update text comes in a transaction three times,
    with different values THEN the handler parsed it once (the backend's parse is not counted here: it
    takes the plain path) and each request wrote its own value; an unparsable text is parsed, and
    refused, every time."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    made = []
    make = UpdateExpressionParser.make
    monkeypatch.setattr(UpdateExpressionParser, "make",
                        staticmethod(lambda text: made.append(text) or make(text)))
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    for n in ("4", "5", "6"):
        dynamodb.transact_write_items(TransactItems=[{"Update": {
            "TableName": "plain", "Key": key, "UpdateExpression": "SET #n = :n, #counted = :n",
            "ExpressionAttributeNames": {"#n": "n", "#counted": "counted"},
            "ExpressionAttributeValues": {":n": {"N": n}}}}])
    assert made == ["SET #n = :n, #counted = :n"]
    assert dynamodb.get_item(TableName="plain", Key=key)["Item"]["n"] == {"N": "6"}
    for _ in range(2):
        with pytest.raises(ClientError):
            dynamodb.update_item(TableName="plain", Key=key, UpdateExpression="SET #n = = :n",
                                 ExpressionAttributeNames={"#n": "n"},
                                 ExpressionAttributeValues={":n": {"N": "1"}})
    assert made[1:] == ["SET #n = = :n"] * 2


def test_a_shortcut_whose_moto_code_changed_refuses_to_install(monkeypatch) -> None:
    """GIVEN moto's names replaced by something the shortcuts were not checked against WHEN installed THEN
    each raises ``MotoShortcutMismatch`` naming what changed, rather than wrapping the unknown."""
    import moto.core.responses as core_responses
    import moto.dynamodb.responses as handlers

    from local.aws_emulation import serialize_dynamodb
    from local.moto_shortcuts import MotoShortcutMismatch, actions_listed_once, update_names_parsed_once

    serialize_dynamodb()
    monkeypatch.setattr(core_responses, "method_names_from_class", lambda clazz: [])
    with pytest.raises(MotoShortcutMismatch, match="method_names_from_class"):
        actions_listed_once()
    monkeypatch.setattr(handlers, "UpdateExpressionParser", type("Other", (), {}))
    with pytest.raises(MotoShortcutMismatch, match="UpdateExpressionParser"):
        update_names_parsed_once()
    from moto.core import serialize

    from local import moto_shortcuts

    monkeypatch.setattr(serialize.BaseJSONSerializer, "_serialize_type_structure",
                        serialize.BaseJSONSerializer._serialize_type_structure.__wrapped__)
    monkeypatch.setattr(moto_shortcuts, "_SERIALIZER_SOURCE", "0" * 16)
    with pytest.raises(MotoShortcutMismatch, match="serializer steps changed"):
        moto_shortcuts.attribute_values_serialized_directly()
    monkeypatch.setattr(handlers, "create_condition_expression_parser", lambda *args: None)
    with pytest.raises(MotoShortcutMismatch, match="create_condition_expression_parser"):
        moto_shortcuts.conditions_parsed_once()


VALUES = [
    {"S": "text"}, {"S": ""}, {"S": "ünï ✓"}, {"N": "1.50"}, {"BOOL": False}, {"BOOL": True}, {"NULL": True},
    {"SS": ["a", "b"]}, {"NS": ["1", "2.5"]}, {"M": {}}, {"L": []}, {"SS": []},
    {"M": {"a.b": {"S": "dot"},
           "deep": {"M": {"ids": {"L": [{"S": "x"}, {"N": "2"}, {"M": {"k": {"NULL": True}}}]}}}}},
    {"L": [{"L": [{"BOOL": True}]}, {"SS": ["z"]}]},
    # Not reproduced: moto's own steps write them (binary, a member of the wrong type, two members, a None).
    {"B": b"\x00\x01"}, {"BS": [b"\x02"]}, {"M": {"b": {"B": b"\x03"}}}, {"L": [{"S": "x"}, {"B": b"\x04"}]},
    {"N": 5}, {"S": "a", "N": "1"}, {"M": {"": {"S": "empty name"}}}, {"L": [None]}, {"BOOL": "true"}, {},
]


def _query_body(items: list[dict[str, Any]]) -> str:
    """The body moto's server gives for a Query answering ``items``, as its handler builds it."""
    from moto.core.responses import get_service_model
    from moto.core.serialize import JSONSerializer, XFormedAttributePicker
    from moto.dynamodb.responses import DynamoResult

    serializer = JSONSerializer(operation_model=get_service_model("dynamodb").operation_model("Query"),
                                value_picker=XFormedAttributePicker(response_transformers={}))
    result = DynamoResult({"Items": items, "Count": len(items), "ScannedCount": len(items),
                           "LastEvaluatedKey": items[0] if items else None})
    return serializer.serialize(result.result)["body"]


def test_attribute_values_are_written_as_motos_serializer_writes_them(monkeypatch) -> None:
    """GIVEN items of every attribute type (nested maps and lists, empty ones, binaries, malformed values)
    WHEN serialized with the direct writing and with moto's own steps THEN the same JSON bodies, byte for
    byte; and the plain items never reached moto's member picker (the direct path was taken)."""
    from moto.core import serialize

    from local.aws_emulation import serialize_dynamodb

    serialize_dynamodb()
    items = [{"pk": {"S": f"p{n}"}, "value": value} for n, value in enumerate(VALUES)]
    plain = [{"pk": {"S": "p"}, **{f"a{n}": value for n, value in enumerate(VALUES[:14])}}]
    direct = [_query_body([item]) for item in items] + [_query_body(plain), _query_body([])]
    picked = []
    pick = serialize.XFormedAttributePicker.get_possible_keys
    monkeypatch.setattr(serialize.XFormedAttributePicker, "get_possible_keys",
                        lambda picker, context: picked.append(context.key) or pick(picker, context))
    _query_body(plain)
    assert not {"S", "N", "M", "L", "SS", "BOOL"} & set(picked)
    monkeypatch.setattr(serialize.BaseJSONSerializer, "_serialize_type_structure",
                        serialize.BaseJSONSerializer._serialize_type_structure.__wrapped__)
    own = [_query_body([item]) for item in items] + [_query_body(plain), _query_body([])]
    assert direct == own
    assert '"value": {"B": "AAE="}' in direct[VALUES.index({"B": b"\x00\x01"})]


def test_items_in_answers_and_cancellation_reasons_are_motos(dynamodb, monkeypatch) -> None:
    """GIVEN twin stored items WHEN read back (GetItem, Query, Scan, BatchGetItem, UpdateItem ALL_NEW) and
    named by a transaction's failed condition (ALL_OLD) THEN the same answers with the direct writing (one
    table) and moto's own steps (its twin)."""
    from moto.core import serialize

    def calls(table: str) -> list[tuple[str, dict[str, Any]]]:
        key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
        failing = {"TransactItems": [{"ConditionCheck": {
            "TableName": table, "Key": key, "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}]}
        return [("get_item", {"TableName": table, "Key": key}),
                ("query", {"TableName": table, "KeyConditionExpression": "pk = :a",
                           "ExpressionAttributeValues": {":a": {"S": "a"}}}),
                ("scan", {"TableName": table}),
                ("batch_get_item", {"RequestItems": {table: {"Keys": [key]}}}),
                ("update_item", {"TableName": table, "Key": key, "UpdateExpression": "SET #z = :z",
                                 "ExpressionAttributeNames": {"#z": "z"}, "ReturnValues": "ALL_NEW",
                                 "ExpressionAttributeValues": {":z": {"L": [{"N": "1"}]}}}),
                ("transact_write_items", failing)]

    direct = [_outcome(dynamodb, action, request) for action, request in calls("plain")]
    monkeypatch.setattr(serialize.BaseJSONSerializer, "_serialize_type_structure",
                        serialize.BaseJSONSerializer._serialize_type_structure.__wrapped__)
    own = [_outcome(dynamodb, action, request) for action, request in calls("moto")]
    assert direct == own
    assert "'tags': {'SS': ['a', 'b']}" in direct[0] and "ConditionalCheckFailed" in direct[-1]


def test_a_requests_condition_is_parsed_once_and_judged_on_its_own_values(dynamodb, monkeypatch) -> None:
    """GIVEN moto's condition parser counted WHEN transactions whose two actions have conditions run (one
    holding, one failing) THEN each condition was parsed once (by the handler, its tree then evaluated),
    not twice, and each was judged on its own request's values."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    parsed = []
    parse = ConditionExpressionParser.parse
    monkeypatch.setattr(ConditionExpressionParser, "parse",
                        lambda parser: parsed.append(parser.condition_expression) or parse(parser))
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}

    def transaction(state: str) -> list[dict[str, Any]]:
        return [{"ConditionCheck": {"TableName": "plain", "Key": key, "ConditionExpression": "#s = :s",
                                    "ExpressionAttributeNames": {"#s": "state"},
                                    "ExpressionAttributeValues": {":s": {"S": state}}}},
                {"Update": {"TableName": "moto", "Key": key, "UpdateExpression": "SET #n = :n",
                            "ConditionExpression": "attribute_exists(#n)",
                            "ExpressionAttributeNames": {"#n": "n"},
                            "ExpressionAttributeValues": {":n": {"N": "8"}}}}]

    dynamodb.transact_write_items(TransactItems=transaction("on"))
    assert parsed == ["#s = :s", "attribute_exists(#n)"]
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(TransactItems=transaction("off"))
    reasons = [reason["Code"] for reason in refused.value.response["CancellationReasons"]]
    assert reasons == ["ConditionalCheckFailed", "None"]
    assert len(parsed) == 4


def test_conditions_parsed_once_give_motos_answers_and_errors(dynamodb, monkeypatch) -> None:
    """GIVEN UpdateItem and TransactWriteItems requests with conditions that hold and fail, and
    placeholders missing or unused WHEN sent with the handler's tree kept and with moto's own parsing on a
    twin table THEN the same answers, errors, cancellation reasons and items."""
    import moto.dynamodb.responses as handlers

    from local.moto_shortcuts import _CHECKED_CONDITIONS

    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}

    def requests(table: str) -> list[tuple[str, dict[str, Any]]]:
        update = {"TableName": table, "Key": key, "UpdateExpression": "SET #n = :n",
                  "ExpressionAttributeNames": {"#n": "n", "#s": "state"},
                  "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        holds = {**update, "ConditionExpression": "#s = :on AND #n = :old",
                 "ExpressionAttributeValues": {":n": {"N": "2"}, ":on": {"S": "on"}, ":old": {"N": "1.5"}}}
        fails = {**holds, "ExpressionAttributeValues": {
            ":n": {"N": "3"}, ":on": {"S": "on"}, ":old": {"N": "1.5"}}}
        unused = {**holds, "ExpressionAttributeNames": {"#n": "n", "#s": "state", "#x": "x"}}
        return [("update_item", request) for request in (holds, fails, unused)] + [
            ("transact_write_items", {"TransactItems": [{"Update": request}]}) for request in (fails, unused)]

    kept = [_outcome(dynamodb, action, request) for action, request in requests("plain")]
    monkeypatch.setattr(handlers, "create_condition_expression_parser",
                        handlers.create_condition_expression_parser.__wrapped__)
    own = [_outcome(dynamodb, action, request) for action, request in requests("moto")]
    assert kept == own
    assert "ConditionalCheckFailedException" in kept[1] and "ValidationException" in kept[2]
    assert "TransactionCanceledException" in kept[3] and "ValidationException" in kept[4]
    assert len(_CHECKED_CONDITIONS) <= 64
