"""DynamoDB request units as bench/dynamo_units.py computes them, against the AWS docs' worked examples."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from bench.dynamo_units import (
    ON_DEMAND_PRICES,
    DynamoMeter,
    IndexSchema,
    TableSchema,
    attribute_size,
    dollars_per_month,
    index_write_units,
    item_size,
    read_units,
    request_units,
    schemas_from_create_params,
    write_units,
)

KB = 1024


def _blob(size: int) -> dict[str, dict[str, str]]:
    """An item of exactly ``size`` bytes: key "k" (1 + 1) and a string "v" (1 + the rest)."""
    return {"k": {"S": "a"}, "v": {"S": "x" * (size - 3)}}


def test_string_number_binary_boolean_and_null_sizes_follow_the_sizing_rules() -> None:
    """Strings count UTF-8 bytes, numbers 1 byte per 2 significant digits + 1, binary raw bytes, bool 1."""
    assert attribute_size({"S": "héllo"}) == 6
    assert attribute_size({"N": "12345"}) == 4  # 5 significant digits -> 3 bytes + 1
    assert attribute_size({"N": "0.001200"}) == 2  # leading and trailing zeros trimmed: "12"
    assert attribute_size({"N": "-7"}) == 2
    assert attribute_size({"B": b"\x00\x01\x02"}) == 3
    assert attribute_size({"BOOL": True}) == attribute_size({"NULL": True}) == 1


def test_lists_and_maps_cost_three_bytes_plus_one_per_element_and_their_names() -> None:
    """A list or map is 3 bytes of overhead, 1 byte per element, plus the elements (and a map's names)."""
    assert attribute_size({"L": []}) == attribute_size({"M": {}}) == 3
    assert attribute_size({"L": [{"S": "ab"}, {"N": "1"}]}) == 3 + (1 + 2) + (1 + 2)
    assert attribute_size({"M": {"side": {"S": "BUY"}}}) == 3 + 1 + 4 + 3
    assert attribute_size({"SS": ["ab", "c"]}) == 3


def test_item_size_adds_attribute_names_and_values() -> None:
    """An item is the sum of its attribute names and values."""
    assert item_size({"pk": {"S": "USER#1"}, "n": {"N": "10"}}) == (2 + 6) + (1 + 2)
    assert item_size(None) == 0
    assert item_size(_blob(1500)) == 1500


def test_reads_round_to_4_kb_and_halve_when_eventually_consistent() -> None:
    """The docs' examples: 3.5 KB reads as 4 KB, 10 KB as 12; 8 KB is 2 RRU, 1 eventual, 4 transactional."""
    assert read_units(3584, consistent=True) == 1
    assert read_units(10 * KB, consistent=True) == 3
    assert read_units(8 * KB, consistent=True) == 2
    assert read_units(8 * KB, consistent=False) == 1
    assert read_units(8 * KB, consistent=True, transactional=True) == 4
    assert read_units(0, consistent=False) == 0.5  # nothing found still costs the minimum


def test_writes_round_to_1_kb_and_double_in_a_transaction() -> None:
    """The docs' examples: a 1 KB write is 1 WRU, 3 KB is 3, a transactional 3 KB write is 6."""
    assert write_units(KB) == 1
    assert write_units(3 * KB) == 3
    assert write_units(3 * KB, transactional=True) == 6
    assert write_units(10) == 1


def test_batch_get_rounds_each_item_while_query_rounds_the_sum() -> None:
    """BatchGetItem of 1.5 KB + 6.5 KB reads as 4 + 8 KB (3 RRU); a Query of the same items 8 KB (2 RRU)."""
    small, large = _blob(1536), _blob(6656)
    batch = request_units(
        "BatchGetItem",
        {"RequestItems": {"t": {"Keys": [{}, {}], "ConsistentRead": True}}},
        {"Responses": {"t": [small, large]}},
        {},
        {},
    )
    params = {"TableName": "t", "ConsistentRead": True}
    query = request_units("Query", params, {"Items": [small, large]}, {}, {})
    assert (batch.rru, query.rru) == (3, 2)


def test_batch_get_charges_the_minimum_for_a_key_not_found() -> None:
    """A key BatchGetItem does not find costs one minimal read (0.5 RRU eventually consistent)."""
    params = {"RequestItems": {"t": {"Keys": [{}, {}]}}}
    units = request_units("BatchGetItem", params, {"Responses": {"t": [_blob(100)]}}, {}, {})
    assert units.rru == 1.0


def test_an_update_pays_for_the_larger_of_the_item_before_and_after() -> None:
    """UpdateItem shrinking a 2.5 KB item to 0.5 KB costs 3 WRU (the item before), not 1."""
    units = request_units(
        "UpdateItem", {"TableName": "t", "Key": {}}, {}, {0: (_blob(2560), _blob(512))}, {}
    )
    assert units.wru == 3


def test_a_transaction_pays_twice_for_every_item_condition_checks_included() -> None:
    """TransactWriteItems: a 1.5 KB Put and a ConditionCheck of a 100-byte item cost 2x2 + 2x1 WRU."""
    params = {"TransactItems": [
        {"Put": {"TableName": "t", "Item": _blob(1536)}},
        {"ConditionCheck": {"TableName": "t", "Key": {"k": {"S": "b"}}}},
    ]}
    states = {0: (None, _blob(1536)), 1: (_blob(100), _blob(100))}
    units = request_units("TransactWriteItems", params, {}, states, {})
    assert units.wru == 6


def test_index_writes_count_puts_key_changes_and_removals() -> None:
    """A GSI costs 1 write for a new indexed item, 2 for a new index key, 1 for leaving it, 0 untouched."""
    table = TableSchema(keys=("pk",), indexes=(IndexSchema("gsi1", ("g",), "KEYS_ONLY"),))
    base = {"pk": {"S": "a"}, "x": {"S": "1"}}
    indexed = {**base, "g": {"S": "one"}}
    assert index_write_units(table, None, indexed) == 1
    assert index_write_units(table, indexed, {**indexed, "g": {"S": "two"}}) == 2
    assert index_write_units(table, indexed, base) == 1
    assert index_write_units(table, indexed, {**indexed, "x": {"S": "2"}}) == 0  # not projected
    assert index_write_units(table, base, {**base, "x": {"S": "2"}}) == 0  # not in the index


def test_monthly_dollars_multiply_units_by_ticks_and_the_price() -> None:
    """1 WRU + 1 RRU per tick, 1,000 strategies, 43,200 ticks a month, US East prices: $27 + $5.40."""
    price = ON_DEMAND_PRICES["us-east-1"]
    assert dollars_per_month(1, 1, price) == pytest.approx(43.2 * (0.625 + 0.125))


@mock_aws
def test_meter_prices_real_requests_to_moto_including_a_refused_condition(monkeypatch) -> None:
    """The meter sees put, update, refused put and batch get on moto, with units and the caller's scope."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-1")
    create = {
        "TableName": "t",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    client = boto3.client("dynamodb", region_name="ap-northeast-1")
    client.create_table(**create)
    meter = DynamoMeter(schemas_from_create_params({"T": create}))
    with meter.active(), meter.scope("turn"):
        client.put_item(TableName="t", Item=_blob(2560))  # 3 WRU
        client.update_item(  # 2.5 KB -> 0.5 KB: 3 WRU
            TableName="t", Key={"k": {"S": "a"}}, UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"S": "y" * 509}},
        )
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.put_item(TableName="t", Item=_blob(100), ConditionExpression="attribute_not_exists(k)")
        client.batch_get_item(RequestItems={"t": {"Keys": [{"k": {"S": "a"}}, {"k": {"S": "zz"}}]}})
    assert meter.by_operation("turn") == {"BatchGetItem": 1, "PutItem": 2, "UpdateItem": 1}
    # 3 + 3 WRU, 1 for the refused put (on the 0.5 KB item), 0.5 + 0.5 RRU for the two keys
    totals = meter.totals("turn")
    assert (totals["requests"], totals["rru"], totals["wru"], totals["index_wru"]) == (4, 1.0, 7.0, 0.0)
    assert meter.probe_cpu_s > 0
