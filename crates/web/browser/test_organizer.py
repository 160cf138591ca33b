"""The organizer's path in a real browser: a venue made with the layout editor, an event made
and edited through its form, put on sale from My events, and a buyer buying from it while the
organizer watches the dashboard's figures and chart move. Also the preferences page."""

import json
import os
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

from conftest import BASE, OUT, call, gz, screenshots, sign_up
from playwright.sync_api import expect


def become_organizer(watched, admin_token, name="Olga Organizer"):
    """Signs a new account up, has the admin make it an organizer's, and signs it in again
    (the role rides in the access token)."""
    email = f"org-{uuid.uuid4().hex[:10]}@browser.example"
    request = watched.page.context.request
    made = request.post(f"{BASE}/api/auth/register", data={"email": email, "password": "organizer-pass-1", "name": name})
    assert made.status == 201, made.text()
    status, body = call("PUT", f"/api/users/{made.json()['userId']}/role", {"role": "organizer"}, admin_token)
    assert status == 200, body
    login = request.post(f"{BASE}/api/auth/login", data={"email": email, "password": "organizer-pass-1"})
    assert login.status == 200, login.text()


def local(at):
    """A datetime-local value (UTC, to the second)."""
    return at.strftime("%Y-%m-%dT%H:%M:%S")


def test_an_organizer_makes_a_venue_and_an_event_puts_it_on_sale_and_watches_a_buyer_buy(
    new_page, admin_token
):
    org = new_page()
    page = org.page
    become_organizer(org, admin_token)
    hall = f"Harbour Hall {uuid.uuid4().hex[:4]}"
    name = f"Lighthouse Serenade {uuid.uuid4().hex[:4]}"

    page.goto("/")
    page.get_by_role("link", name="My events").click()
    expect(page.get_by_role("heading", name="My events")).to_be_visible()
    page.get_by_role("link", name="Venues").click()

    # The layout editor: section A with two rows of 10 to start; reshape it and add B.
    page.get_by_label("Name", exact=True).fill(hall)
    page.get_by_label("Address", exact=True).fill("1 Quay")
    page.get_by_label("City", exact=True).fill("Porto")
    page.get_by_label("Row 1 seats").first.fill("6")
    page.get_by_role("button", name="Add a row to section 1").click()
    expect(page.locator("#section-0-row-2")).to_be_focused()
    page.get_by_role("button", name="Remove row 3 of section 1").click()
    page.get_by_role("button", name="Add a section").click()
    expect(page.get_by_label("Section 2 name")).to_have_value("B")
    expect(page.get_by_label("Section 2 name")).to_be_focused()
    page.locator("#section-1-row-0").fill("4")
    expect(page.locator("#layout-total")).to_have_text("20 seats in all.")
    # A bad section name comes back from the API next to its field.
    page.get_by_label("Section 1 name").fill("A A")
    page.get_by_role("button", name="Create venue").click()
    error = page.locator('[data-error-for="/layout/sections/0/name"]')
    expect(error).to_be_visible()
    expect(page.get_by_label("Section 1 name")).to_have_attribute("aria-invalid", "true")
    screenshots(page, "venue-editor")
    page.get_by_label("Section 1 name").fill("A")
    page.get_by_role("button", name="Create venue").click()

    expect(page.get_by_role("status").filter(has_text=f"Venue “{hall}” is created.")).to_be_visible()
    expect(page.get_by_text("2 sections, 20 seats")).to_be_visible()
    page.get_by_role("link", name="Create an event there").click()

    # The event form: the venue's sections get price fields; a 422 lands next to its field.
    now = datetime.now(timezone.utc)
    sale_opens = now + timedelta(seconds=40)
    expect(page.get_by_label("Venue", exact=True)).to_have_value(re.compile(r"^[0-9a-f-]{36}$"))
    expect(page.get_by_label("Section B")).to_be_visible()
    page.get_by_label("Description (optional)").fill("Strings by the <b>sea</b>")
    page.get_by_label("Date and time (UTC)").fill((now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Type", exact=True).select_option("concert")
    page.get_by_label("Tags (comma-separated, optional)").fill("strings, harbour")
    page.get_by_label("Sale opens (UTC)").fill(local(sale_opens))
    page.get_by_label("Base price").fill("40")
    page.get_by_label("Time zone of the venue (sales figures follow its days)").fill("Europe/Lisbon")
    page.get_by_label("Section B").fill("25")
    page.get_by_role("button", name="Create event").click()
    expect(page.locator("#ev-name-error")).to_be_visible()
    expect(page.get_by_label("Name", exact=True)).to_be_focused()
    screenshots(page, "event-form")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create event").click()

    page.wait_for_url(re.compile(r"/organizer/events"))
    expect(page.locator("#org-message")).to_contain_text("is created")
    card = page.locator("li.card", has=page.get_by_role("link", name=name, exact=True))
    expect(card.locator(".status")).to_have_text("Coming soon")

    # Edit it: the form comes back filled; the change is saved.
    card.get_by_role("link", name=f"Edit {name}").click()
    expect(page.get_by_label("Name", exact=True)).to_have_value(name)
    expect(page.get_by_label("Section B")).to_have_value("25")
    expect(page.get_by_label("Time zone of the venue (sales figures follow its days)")).to_have_value("Europe/Lisbon")
    expect(page.get_by_label("Venue", exact=True)).to_be_disabled()
    page.get_by_label("Description (optional)").fill("Strings by the sea, at dusk")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(re.compile(r"/organizer/events"))
    expect(page.locator("#org-message")).to_have_text(f"“{name}” is saved.")

    # Cancelling asks first; keeping it changes nothing.
    card = page.locator("li.card", has=page.get_by_role("link", name=name, exact=True))
    card.get_by_role("button", name=f"Cancel {name}").click()
    expect(card.get_by_role("button", name="Yes, cancel the event")).to_be_visible()
    card.get_by_role("button", name="Keep it").click()
    expect(card.get_by_role("button", name="Yes, cancel the event")).to_be_hidden()
    card.get_by_role("button", name=f"Put {name} on sale").click()
    try:
        expect(page.locator("#org-message")).to_have_text(f"“{name}” is on sale.")
    except AssertionError as e:
        # Say what the card showed: a refusal of the status change lands there, not in the
        # page's message.
        shown = card.locator(".field-error").all_text_contents()
        raise AssertionError(f"put on sale: the card says {shown!r}; errors {org.errors!r}") from e
    card = page.locator("li.card", has=page.get_by_role("link", name=name, exact=True))
    expect(card.locator(".status")).to_have_text("On sale")
    screenshots(page, "my-events")

    card.get_by_role("link", name=f"Sales dashboard of {name}").click()
    expect(page.get_by_role("heading", name=f"Sales of {name}")).to_be_visible()
    expect(page.locator("[data-figure=sold]")).to_have_text("0")
    expect(page.locator("#chart")).to_contain_text("No sales yet.")

    # A buyer finds it by a word of its name and buys two seats of section B.
    buyer = new_page(width=360)
    sign_up(buyer)
    shop = buyer.page
    deadline = time.time() + 20
    event_id = None
    while time.time() < deadline and not event_id:
        _, found = call("GET", "/api/search/events?q=lighthouse%20serenade&size=50")
        event_id = next((h["eventId"] for h in (found or {}).get("hits", []) if h["nameHighlight"]["text"] == name), None)
        time.sleep(0.2)
    assert event_id, "search never found the event"
    shop.goto("/?q=lighthouse")
    shop.locator("#results").get_by_role("link", name=name).click()
    expect(shop.get_by_role("heading", name=name)).to_be_visible()
    expect(shop.get_by_role("link", name="Sales dashboard")).to_have_count(0)
    wait = (sale_opens - datetime.now(timezone.utc)).total_seconds()
    if wait > 0:
        time.sleep(wait + 1)
    shop.locator('g.seat[data-seat="B-1-1"]').click()
    shop.locator('g.seat[data-seat="B-1-2"]').click()
    expect(shop.locator("#total")).to_have_text("€50")
    shop.get_by_role("button", name="Hold selected seats").click()
    shop.get_by_role("button", name="Pay and get tickets").click()
    shop.wait_for_url(re.compile(r"/orders"))

    # The dashboard moves without a reload: figures from the stream, the chart via htmx.
    expect(page.locator("[data-figure=sold]")).to_have_text("2", timeout=15_000)
    expect(page.locator("[data-figure=revenue]")).to_have_text("€50")
    expect(page.locator("#chart svg.chart rect")).not_to_have_count(0, timeout=15_000)
    screenshots(page, "dashboard-live")
    page.goto(f"/events/{event_id}")
    expect(page.get_by_role("link", name="Sales dashboard")).to_be_visible()
    assert org.errors == [] and buyer.errors == [], (org.errors, buyer.errors)


def test_preferences_are_saved_survive_a_reload_and_a_stale_save_asks_to_reload(new_page):
    w = new_page(width=360)
    sign_up(w)
    page = w.page

    page.goto("/")
    page.get_by_role("link", name="Preferences").click()
    expect(page.get_by_role("heading", name="Preferences")).to_be_visible()
    page.get_by_label("Language and region (like en-GB)").fill("pt-PT")
    page.get_by_label("Time zone (like Europe/Lisbon)").fill("Europe/Lisbon")
    page.get_by_label("Show prices with").select_option("code")
    page.get_by_label("News about events I may like").uncheck()
    page.get_by_label("Push notifications").check()
    page.get_by_label("Reminder, hours before an event (0: none)").fill("24")
    page.get_by_label("Favourite cities (comma-separated)").fill("Lisbon, Porto")
    page.get_by_label("festival").check()
    page.get_by_label("concert").check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.locator("#form-message")).to_have_text("Your preferences are saved.")
    screenshots(page, "preferences")

    page.reload()
    expect(page.get_by_label("Language and region (like en-GB)")).to_have_value("pt-PT")
    expect(page.get_by_label("Time zone (like Europe/Lisbon)")).to_have_value("Europe/Lisbon")
    expect(page.get_by_label("Show prices with")).to_have_value("code")
    expect(page.get_by_label("Push notifications")).to_be_checked()
    expect(page.get_by_label("News about events I may like")).not_to_be_checked()
    expect(page.get_by_label("Reminder, hours before an event (0: none)")).to_have_value("24")
    expect(page.get_by_label("Favourite cities (comma-separated)")).to_have_value("Lisbon, Porto")
    expect(page.get_by_label("festival")).to_be_checked()

    # A bad value reads next to its field.
    page.get_by_label("Time zone (like Europe/Lisbon)").fill("lisbon")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.locator("#pref-tz-error")).to_be_visible()
    page.get_by_label("Time zone (like Europe/Lisbon)").fill("Europe/Lisbon")

    # Saved in another tab meanwhile: this tab's save is refused and asks for a reload.
    other = page.context.new_page()
    other.goto("/preferences")
    other.get_by_label("Favourite cities (comma-separated)").fill("Braga")
    other.get_by_role("button", name="Save preferences").click()
    expect(other.locator("#form-message")).to_have_text("Your preferences are saved.")
    page.get_by_label("Favourite cities (comma-separated)").fill("Faro")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.locator("#form-message")).to_contain_text("Reload the page")
    page.reload()
    expect(page.get_by_label("Favourite cities (comma-separated)")).to_have_value("Braga")
    assert w.errors == [], w.errors


def test_the_organizers_and_admins_pages_weigh_under_100_kb_compressed(new_page, admin_token):
    w = new_page()
    page = w.page
    become_organizer(w, admin_token)
    admin = new_page()
    login = admin.page.context.request.post(
        f"{BASE}/api/auth/login",
        data={"email": os.environ["EVENTLY_BROWSER_ADMIN_EMAIL"], "password": os.environ["EVENTLY_BROWSER_ADMIN_PASSWORD"]},
    )
    assert login.status == 200
    sizes = {}
    weights = {}

    def record(response):
        kind = response.request.resource_type
        if kind in ("document", "script", "stylesheet", "xhr", "fetch") and response.status == 200:
            try:
                weights[response.url] = gz(response.body())
            except Exception:  # a stream has no body to weigh
                pass

    page.on("response", record)
    admin.page.on("response", record)
    for name, path in [
        ("my-events", "/organizer/events"),
        ("venues", "/organizer/venues"),
        ("event-form", "/organizer/events/new"),
        ("preferences", "/preferences"),
        ("data", "/organizer/data"),
        ("admin-users", "/admin/users"),
        ("admin-settings", "/admin/settings"),
    ]:
        if name.startswith("admin"):
            page = admin.page
        weights.clear()
        page.goto(path)
        page.wait_for_load_state("networkidle")
        sizes[name] = {"bytes_gzip": sum(weights.values()), "files": len(weights)}
        screenshots(page, f"empty-{name}")

    with open(os.path.join(OUT, "budget-organizer.json"), "w") as f:
        json.dump(sizes, f, indent=2)
    for name, size in sizes.items():
        assert size["bytes_gzip"] <= 100 * 1024, (name, size)
    assert w.errors == [] and admin.errors == [], (w.errors, admin.errors)


def test_an_organizer_imports_events_from_a_csv_and_sees_each_failed_row(new_page, admin_token):
    w = new_page()
    page = w.page
    become_organizer(w, admin_token)
    now = datetime.now(timezone.utc)
    stamp = lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    tag = uuid.uuid4().hex[:6]
    csv = (
        "name,date,venue,seats,price,currency,saleStartTime\n"
        f"Imported Tango {tag},{stamp(now + timedelta(days=20))},Dock {tag},50,3000,EUR,{stamp(now + timedelta(days=1))}\n"
        f"Broken Row {tag},next tuesday,Dock {tag},50,3000,EUR,{stamp(now + timedelta(days=1))}\n"
    ).encode()

    page.goto("/organizer/events")
    page.get_by_role("link", name="Import and export").click()
    page.get_by_label("File").set_input_files({"name": "events.csv", "mimeType": "text/csv", "buffer": csv})
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#import-summary")).to_have_text("2 rows read, 1 failed. Nothing was written (check only).")
    failed = page.locator("#import-errors tbody tr")
    expect(failed).to_have_count(1)
    expect(failed.first.locator("td").first).to_have_text("3")
    expect(failed.first).to_contain_text("next tuesday")
    errors_csv = page.get_by_role("link", name="The errors as CSV")
    expect(errors_csv).to_be_visible()
    got = page.context.request.get(BASE + errors_csv.get_attribute("href"))
    assert got.status == 200 and "next tuesday" in got.text(), got.text()
    screenshots(page, "import")

    page.get_by_label("Check only: judge every row, write nothing").uncheck()
    page.get_by_label("Import the valid rows").check()
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#import-summary")).to_have_text("2 rows read, 1 failed. 1 created, 0 updated.")

    page.goto("/organizer/events")
    expect(page.get_by_role("link", name=f"Imported Tango {tag}", exact=True)).to_be_visible()
    page.goto("/organizer/data")
    events = page.context.request.get(BASE + page.get_by_role("link", name="CSV").get_attribute("href"))
    assert events.status == 200 and f"Imported Tango {tag}" in events.text()
    assert w.errors == [], w.errors
