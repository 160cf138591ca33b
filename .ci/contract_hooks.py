"""schemathesis hooks of .ci/contract: help the stateful phase through the purchase chain.

Random date-times almost never make an event that is on sale now, and a hold takes either
`seatIds` or `quantity`; both rules relate fields to each other or to the clock, which a schema
cannot state. These hooks only replace values that are already schema-valid with other
schema-valid values, so a generated invalid value (a negative case) stays invalid and its
check keeps its meaning.
"""
import re
import uuid
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
    """One way of choosing seats: `quantity` alone when both were generated valid, and one
    seat when neither was generated (both are optional in the schema, so adding one keeps an
    invalid body invalid)."""
    if not isinstance(body, dict):
        return body
    quantity = body.get("quantity")
    if isinstance(quantity, int) and not isinstance(quantity, bool) and 1 <= quantity <= 10:
        if isinstance(body.get("seatIds"), list):
            del body["seatIds"]
    elif body.get("quantity") is None and body.get("seatIds") is None:
        body.pop("seatIds", None)
        body["quantity"] = 1
    if "section" in body and body["section"] is None:
        del body["section"]
    return body


def _whole(value, low, high):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer() and low <= value <= high


@schemathesis.hook("map_body").apply_to(method="POST", path="/api/events")
def small_event(context, body):
    """At most 1,000 places: booking lays out every seat of a new event, and a run full of
    million-seat events would measure that, not the contract."""
    if isinstance(body, dict) and _whole(body.get("totalSeats"), 1001, 1_000_000):
        body["totalSeats"] = 1000
    return body


@schemathesis.hook("map_body").apply_to(method="POST", path="/api/venues")
def small_venue(context, body):
    """At most 1,000 places for the same reason: a smaller capacity, fewer seats per row."""
    if not isinstance(body, dict):
        return body
    if _whole(body.get("capacity"), 1001, 1_000_000):
        body["capacity"] = 1000
    layout = body.get("layout")
    if isinstance(layout, dict) and isinstance(layout.get("sections"), list):
        for section in layout["sections"][:100]:
            rows = section.get("rows") if isinstance(section, dict) else None
            if isinstance(rows, list):
                for row in rows:
                    if isinstance(row, dict) and _whole(row.get("seats"), 2, 1000):
                        row["seats"] = 1
    return body


_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def _fresh_key(headers):
    """A new valid `Idempotency-Key` in place of a generated valid one. Generated keys repeat
    (the shortest valid key is one character), and a key sent again with another body is
    refused by design (422: the key's first answer stands); a fresh key per request keeps the
    purchase chain going. An invalid key is left as generated."""
    if isinstance(headers, dict):
        key = headers.get("Idempotency-Key")
        if isinstance(key, str) and _KEY.fullmatch(key):
            headers["Idempotency-Key"] = str(uuid.uuid4())
    return headers


@schemathesis.hook("map_headers").apply_to(method="POST", path="/api/orders/purchase")
def purchase_key(context, headers):
    return _fresh_key(headers)


@schemathesis.hook("map_headers").apply_to(method="POST", path="/api/orders/checkout")
def checkout_key(context, headers):
    return _fresh_key(headers)
