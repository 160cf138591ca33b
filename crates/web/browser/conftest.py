"""Fixtures of the web client's browser tests (run by .ci/browser against `evently serve`).

The server's address and a bootstrapped admin come from the environment; each test makes its
own event through the JSON API (as an organizer would) and its own buyers.
"""

import gzip
import json
import os
import shutil
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import sync_playwright

BASE = os.environ.get("EVENTLY_BROWSER_BASE", "")
OUT = os.environ.get("EVENTLY_BROWSER_OUT", "target/browser")
WIDTHS = (1280, 360)


def call(method, path, body=None, token=None):
    """A JSON API call; returns (status, body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text else None


@pytest.fixture(scope="session")
def admin_token():
    if not BASE:
        pytest.skip("EVENTLY_BROWSER_BASE not set: run .ci/browser")
    status, body = call(
        "POST",
        "/api/auth/login",
        {
            "email": os.environ["EVENTLY_BROWSER_ADMIN_EMAIL"],
            "password": os.environ["EVENTLY_BROWSER_ADMIN_PASSWORD"],
        },
    )
    assert status == 200, body
    return body["accessToken"]


@pytest.fixture
def make_event(admin_token):
    """Creates a reserved-seat event on sale now and waits until search finds it."""

    def make(name, rows=(8, 8), city="Lisbon", description="", search_word=None, general=0):
        """`general` > 0 makes a general-admission event of that many places."""
        layout = {
            "sections": [
                {"name": "A", "rows": [{"label": str(i + 1), "seats": n} for i, n in enumerate(rows)]},
                {"name": "B", "rows": [{"label": "1", "seats": 6}]},
            ]
        }
        status, venue = call(
            "POST",
            "/api/venues",
            {"name": f"Hall {uuid.uuid4().hex[:6]}", "address": "1 Quay", "city": city, "layout": layout},
            admin_token,
        )
        assert status == 201, venue
        place = {"venueId": venue["venueId"]}
        if general:
            place = {"venueName": f"Field {uuid.uuid4().hex[:6]}", "totalSeats": general}
        now = datetime.now(timezone.utc)
        stamp = lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        status, event = call(
            "POST",
            "/api/events",
            {
                "eventName": name,
                **place,
                "eventDate": stamp(now + timedelta(days=30)),
                "saleStartTime": stamp(now - timedelta(days=1)),
                "basePrice": 4000,
                "currency": "EUR",
                **({} if general else {"sectionPrices": {"B": 2500}}),
                "status": "ON_SALE",
                "eventType": "concert",
                "description": description,
            },
            admin_token,
        )
        assert status == 201, event
        event_id = event["eventId"]
        word = search_word or name.split()[0]
        deadline = time.time() + 20
        while time.time() < deadline:
            _, found = call("GET", f"/api/search/events?q={urllib.request.quote(word)}")
            if any(h["eventId"] == event_id for h in (found or {}).get("hits", [])):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"search never found {name!r}")
        return event_id

    return make


@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium")
    if not executable:
        pytest.skip("chromium not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


class Watched:
    """A page whose console errors, page errors and dialogs are collected (a CSP violation
    or an executed injected script shows up here)."""

    def __init__(self, page):
        self.page = page
        self.errors = []
        self.dialogs = []
        # API answers of 4xx are part of the flows (a taken seat, a declined card) and shown
        # by the page; a failed page or asset, a script error or a CSP violation is not.
        page.on(
            "console",
            lambda m: m.type == "error"
            and not m.text.startswith("Failed to load resource")
            and self.errors.append(m.text),
        )
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on(
            "response",
            lambda r: r.status >= 400
            and "/api/" not in r.url
            and self.errors.append(f"{r.status} {r.request.method} {r.url}"),
        )

        def dialog(d):
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)


@pytest.fixture
def new_page(browser):
    contexts = []

    def make(width=1280):
        context = browser.new_context(base_url=BASE, viewport={"width": width, "height": 900})
        contexts.append(context)
        return Watched(context.new_page())

    yield make
    for context in contexts:
        context.close()


def sign_up(watched, name="Bea Buyer"):
    """Signs a new buyer up through the API of the page's own context (cookies land in the
    browser) and returns the email."""
    email = f"buyer-{uuid.uuid4().hex[:10]}@browser.example"
    request = watched.page.context.request
    made = request.post(f"{BASE}/api/auth/register", data={"email": email, "password": "buyer-password-1", "name": name})
    assert made.status == 201, made.text()
    login = request.post(f"{BASE}/api/auth/login", data={"email": email, "password": "buyer-password-1"})
    assert login.status == 200, login.text()
    return email


def screenshots(page, name):
    """Saves the page at 1280 and 360 px wide under target/browser/screenshots."""
    folder = os.path.join(OUT, "screenshots")
    os.makedirs(folder, exist_ok=True)
    original = page.viewport_size
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(100)
        page.screenshot(path=os.path.join(folder, f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size(original)


def gz(body):
    return len(gzip.compress(body, 9))
