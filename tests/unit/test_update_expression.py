"""An Update's request: the expression built once per shape, and the cached aliases never shared mutably."""

from __future__ import annotations

from klineo.store.dynamo import Update


def test_a_request_with_extra_names_leaves_the_next_request_of_its_shape_unchanged() -> None:
    """GIVEN an update shape cached by a first request that added its own names WHEN the same shape is
    requested again THEN its aliases are only its own, and its values the new ones."""
    first = Update(sets={"status": "paused", "updated_at": "t1"}, removes=["pending"])
    with_extra = first.request(extra_names={"#extra": "extra"}, **{":x": {"S": "x"}})
    again = Update(sets={"status": "active", "updated_at": "t2"}, removes=["pending"]).request()
    assert "#extra" in with_extra["ExpressionAttributeNames"]
    assert "#extra" not in again["ExpressionAttributeNames"]
    assert again["UpdateExpression"] == with_extra["UpdateExpression"]
    assert sorted(value["S"] for value in again["ExpressionAttributeValues"].values()) == ["active", "t2"]


def test_changing_a_requests_names_does_not_change_the_next_request() -> None:
    """GIVEN a caller that edits the names of the request it got WHEN the same shape is requested again
    THEN the new request's names are as built, not the edited ones."""
    request = Update(sets={"status": "paused"}).request()
    request["ExpressionAttributeNames"]["#injected"] = "x"
    again = Update(sets={"status": "active"}).request()
    assert "#injected" not in again["ExpressionAttributeNames"]


def test_a_copy_sets_one_attribute_from_another_stored_or_its_value_when_absent() -> None:
    """GIVEN an Update copying trading_refusals into consecutive_failures beside a plain SET WHEN requested
    THEN the expression SETs it from the stored attribute (its value 0 when the item has none), in order."""
    request = Update(sets={"updated_at": "t1"},
                     copies={"consecutive_failures": ("trading_refusals", 0)}).request()
    assert request["UpdateExpression"] == (
        "SET #updated_at = :updated_at, "
        "#consecutive_failures = if_not_exists(#trading_refusals, :consecutive_failures)")
    assert request["ExpressionAttributeValues"] == {":updated_at": {"S": "t1"},
                                                    ":consecutive_failures": {"N": "0"}}
