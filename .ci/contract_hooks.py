"""schemathesis hooks of .ci/contract: help the stateful phase through the purchase chain.

Random date-times almost never make an event that is on sale now, and a hold takes either
`seatIds` or `quantity`; both rules relate fields to each other or to the clock, which a schema
cannot state. These hooks only replace values that are already schema-valid with other
schema-valid values, so a generated invalid value (a negative case) stays invalid and its
check keeps its meaning.
"""
from datetime import datetime, timedelta, timezone

import schemathesis


def _is_datetime(value):
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@schemathesis.hook("map_body").apply_to(method="POST", path="/api/events")
def event_on_sale_now(context, body):
    """An event a month ahead whose sale opened yesterday, created on sale."""
    if not isinstance(body, dict):
        return body
    now = datetime.now(timezone.utc)
    valid = [key for key in ("eventDate", "saleStartTime") if _is_datetime(body.get(key))]
    if len(valid) == 2:
        body["eventDate"] = _stamp(now + timedelta(days=30))
        body["saleStartTime"] = _stamp(now - timedelta(days=1))
        if _is_datetime(body.get("saleEndTime")):
            body["saleEndTime"] = _stamp(now + timedelta(days=29))
        if body.get("status") in ("UPCOMING", "ON_SALE", None) or "status" not in body:
            body["status"] = "ON_SALE"
    return body


@schemathesis.hook("map_body").apply_to(method="POST", path="/api/orders/holds")
def hold_by_quantity(context, body):
    """`quantity` alone when both ways of choosing seats were generated valid."""
    if isinstance(body, dict) and isinstance(body.get("quantity"), int) and 1 <= body["quantity"] <= 10:
        if isinstance(body.get("seatIds"), list):
            del body["seatIds"]
        if "section" in body and body["section"] is None:
            del body["section"]
    return body
