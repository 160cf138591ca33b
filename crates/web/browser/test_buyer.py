"""The buyer's path in a real browser: sign up, search with a typo, pick seats, pay, see the
tickets' QR codes, cancel; the race for one seat; a declined card; a keyboard-only purchase;
escaping; the page-weight budget."""

import json
import os
import re

from conftest import BASE, OUT, call, gz, screenshots, sign_up
from playwright.sync_api import expect


def seat(page, seat_id):
    return page.locator(f'g.seat[data-seat="{seat_id}"]')


def test_a_buyer_signs_up_finds_an_event_by_a_typo_buys_two_seats_and_cancels(new_page, make_event):
    make_event("Moonlight Sonata Night", description="Beethoven by the river <b>live</b>", search_word="sonata")
    w = new_page()
    page = w.page

    page.goto("/signup")
    screenshots(page, "signup")
    page.get_by_label("Name").fill("Bea Buyer")
    page.get_by_label("Email").fill(f"bea-{os.getpid()}-{id(page)}@browser.example")
    page.get_by_label("Password").fill("buyer-password-1")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{BASE}/")
    expect(page.get_by_role("link", name="My orders")).to_be_visible()

    page.get_by_label("Search events").press_sequentially("sonatta", delay=60)
    result = page.locator("#results").get_by_role("link", name="Moonlight Sonata Night")
    expect(result).to_be_visible()
    expect(page).to_have_url(re.compile(r"q=sonatta"))
    screenshots(page, "events")
    result.click()

    expect(page.get_by_role("heading", name="Moonlight Sonata Night")).to_be_visible()
    expect(page.get_by_text("Beethoven by the river <b>live</b>")).to_be_visible()
    first = page.get_by_role("button", name="Section A, row 1, seat 3, €40, available")
    first.click()
    seat(page, "A-1-4").click()
    expect(seat(page, "A-1-3")).to_have_attribute("aria-pressed", "true")
    expect(seat(page, "A-1-4")).to_have_attribute("aria-label", "Section A, row 1, seat 4, €40, selected")
    expect(page.locator("#total")).to_have_text("€80")
    screenshots(page, "event")
    page.get_by_role("button", name="Hold selected seats").click()

    expect(page.locator("#pay")).to_be_visible()
    expect(page.locator("#countdown-time")).to_have_text(re.compile(r"^[45]:\d\d$"))
    expect(page.locator("#held-total")).to_have_text("€80")
    screenshots(page, "checkout")
    page.get_by_role("button", name="Pay and get tickets").click()

    page.wait_for_url(re.compile(r"/orders"))
    order = page.locator("li.order").first
    expect(order.get_by_role("link", name="Moonlight Sonata Night")).to_be_visible()
    expect(order.locator("svg.qr")).to_have_count(2)
    expect(order.get_by_text("Section A, row 1, seat 3")).to_be_visible()
    screenshots(page, "orders")
    order.get_by_role("button", name="Cancel order and refund").click()

    expect(page.locator("#orders-status")).to_have_text("Your order was cancelled and refunded.")
    expect(page.locator("li.order").first.get_by_text("Cancelled and refunded")).to_be_visible()
    expect(page.locator("svg.qr")).to_have_count(0)
    page.goto("/events/" + page.locator("li.order a").first.get_attribute("href").split("/")[-1])
    expect(seat(page, "A-1-3")).to_have_attribute("data-state", "available")
    assert w.errors == [], w.errors

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{BASE}/")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def test_two_buyers_race_for_one_seat_and_the_loser_keeps_the_rest(new_page, make_event):
    event_id = make_event("Thunder Drums Live")
    a, b = new_page(), new_page(width=360)
    for w in (a, b):
        sign_up(w)
        w.page.goto(f"/events/{event_id}")
    seat(a.page, "A-2-1").click()
    seat(a.page, "A-2-2").click()
    seat(b.page, "A-2-2").click()
    seat(b.page, "A-2-3").click()

    # Both ask for A-2-2 one after the other, as fast as the browsers go: exactly one wins.
    a.page.locator("#hold").click(no_wait_after=True)
    b.page.locator("#hold").click(no_wait_after=True)

    winners = []
    for w in (a, b):
        w.page.wait_for_function(
            "!document.getElementById('pay').hidden || !document.getElementById('pick-message').hidden"
        )
        if w.page.locator("#pay").is_visible():
            winners.append(w)
    assert len(winners) == 1
    loser = b if winners[0] is a else a
    kept = "A-2-3" if loser is b else "A-2-1"
    page = loser.page
    expect(page.locator("#pick-message")).to_contain_text("taken")
    expect(seat(page, "A-2-2")).to_have_attribute("data-state", "held")
    expect(seat(page, "A-2-2")).to_have_attribute("aria-pressed", "false")
    expect(seat(page, "A-2-2")).to_have_attribute("aria-label", re.compile(r"seat 2, €40, held$"))
    expect(seat(page, kept)).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("heading", name="Thunder Drums Live")).to_be_visible()
    screenshots(page, "race-loser")
    assert a.errors == [] and b.errors == [], (a.errors, b.errors)


def test_a_declined_card_and_a_processor_error_read_as_messages_and_a_double_click_buys_once(
    new_page, make_event
):
    event_id = make_event("Velvet Jazz Evening")
    w = new_page()
    page = w.page
    sign_up(w)
    sent = []
    page.on("request", lambda r: sent.append((r.method, r.url.split("?")[0].replace(BASE, ""))))
    page.goto(f"/events/{event_id}")

    page.get_by_label("Or the best available seats:").fill("2")
    page.get_by_role("button", name="Find seats").click()
    expect(page.locator("#pay")).to_be_visible()
    expect(page.locator("#held-total")).to_have_text("€80")
    page.get_by_label("Card ending 0002 (declined)").check()
    page.get_by_role("button", name="Pay and get tickets").click()

    message = page.locator("#pay-message")
    expect(message).to_have_text("Your card was declined and nothing was charged. Please try another card.")
    assert "{" not in message.inner_text()
    screenshots(page, "declined")
    page.get_by_label("Card ending 0119 (processor error)").check()
    page.get_by_role("button", name="Pay and get tickets").click()
    expect(message).to_have_text("The payment service had a problem and nothing was charged. Please try again.")

    # A reload keeps the checkout (same hold, same Idempotency-Key).
    page.reload()
    expect(page.locator("#pay")).to_be_visible()
    page.get_by_label("Visa ending 4242 (approved)").check()
    page.get_by_role("button", name="Pay and get tickets").dblclick()

    page.wait_for_url(re.compile(r"/orders"))
    expect(page.locator("li.order")).to_have_count(1)
    expect(page.locator("li.order svg.qr")).to_have_count(2)
    # Each attempt to pay is one checkout request: no separate intent, confirmation or purchase.
    posts = [p for m, p in sent if m == "POST" and p.startswith("/api/orders/")]
    assert posts[0] == "/api/orders/holds" and set(posts[1:]) == {"/api/orders/checkout"}, sent
    assert len(posts) >= 4, sent  # declined, processor error, and the approved card
    assert w.errors == [], w.errors


def test_a_keyboard_only_purchase(new_page, make_event):
    event_id = make_event("Quiet Keys Recital")
    w = new_page()
    page = w.page
    sign_up(w)
    page.goto(f"/events/{event_id}")

    # Tab from the last link above the map into it: its first seat is next in focus order
    # (a buyer is offered no sales dashboard link).
    expect(page.get_by_role("link", name="Sales dashboard")).to_have_count(0)
    page.get_by_role("link", name="← All events").focus()
    page.keyboard.press("Tab")
    expect(seat(page, "A-1-1")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(seat(page, "A-1-2")).to_be_focused()
    page.keyboard.press("Space")
    expect(seat(page, "A-1-1")).to_have_attribute("aria-pressed", "true")
    expect(seat(page, "A-1-2")).to_have_attribute("aria-pressed", "true")
    page.locator("#hold").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#pay")).to_be_visible()
    page.locator("#pay-button").focus()
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/orders"))
    expect(page.locator("li.order svg.qr")).to_have_count(2)


def test_general_admission_sells_a_number_of_places_without_a_map(new_page, make_event):
    event_id = make_event("Open Air Picnic", general=40)
    w = new_page(width=360)
    page = w.page
    sign_up(w)
    page.goto(f"/events/{event_id}")

    expect(page.locator("svg.seatmap")).to_have_count(0)
    page.get_by_label("Tickets:").fill("3")
    page.get_by_role("button", name="Hold tickets").click()
    expect(page.locator("#held-total")).to_have_text("€120")
    page.get_by_role("button", name="Pay and get tickets").click()

    page.wait_for_url(re.compile(r"/orders"))
    expect(page.locator("li.order svg.qr")).to_have_count(3)
    assert w.errors == [], w.errors


def test_a_waitlisted_buyer_is_offered_returned_seats_and_buys_them(new_page, make_event):
    event_id = make_event("Tiny Cellar Gig", general=2)
    first, second = new_page(), new_page(width=360)
    sign_up(first)
    sign_up(second)
    first.page.goto(f"/events/{event_id}")
    first.page.get_by_label("Tickets:").fill("2")
    first.page.get_by_role("button", name="Hold tickets").click()
    first.page.get_by_role("button", name="Pay and get tickets").click()
    first.page.wait_for_url(re.compile(r"/orders"))

    page = second.page
    page.goto(f"/events/{event_id}")
    expect(page.locator("#available-count")).to_have_text("0")
    page.get_by_label("Tickets wanted:").fill("1")
    page.get_by_role("button", name="Join the waitlist").click()
    expect(page.locator("#wait-status")).to_have_text("You are number 1 on the waitlist for 1 ticket.")
    screenshots(page, "waitlist")
    first.page.get_by_role("button", name="Cancel order and refund").click()
    expect(first.page.locator("#orders-status")).to_have_text("Your order was cancelled and refunded.")

    # The offer arrives on the open page (availability stream → waitlist entry → its hold).
    expect(page.locator("#pay")).to_be_visible(timeout=20_000)
    expect(page.locator("#wait-status")).to_contain_text("held in your name")
    expect(page.locator("#held-total")).to_have_text("€40")
    page.get_by_role("button", name="Pay and get tickets").click()
    page.wait_for_url(re.compile(r"/orders"))
    expect(page.locator("li.order svg.qr")).to_have_count(1)
    assert first.errors == [] and second.errors == [], (first.errors, second.errors)


def test_recommendations_say_why(new_page, make_event):
    make_event("Sunrise Yoga Session", search_word="sunrise")
    w = new_page()
    page = w.page

    page.goto("/")

    recs = page.locator(".recs li")
    expect(recs.first).to_be_visible()
    expect(recs.first.locator(".reason")).not_to_be_empty()
    expect(page.get_by_role("heading", name="Popular now")).to_be_visible()
    assert w.errors == [], w.errors


def test_form_errors_show_next_to_their_fields(new_page):
    w = new_page(width=360)
    page = w.page

    page.goto("/signup")
    page.get_by_label("Name").fill("Cy")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#email-error")).to_have_text("Email must contain @.")
    expect(page.locator("#password-error")).to_contain_text("at least 8 characters")
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    screenshots(page, "signup-errors")

    sign_up(w, name="Cy Buyer")
    page.goto("/profile")
    expect(page.get_by_label("Name")).to_have_value("Cy Buyer")
    page.get_by_label("Name").fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#name-error")).to_have_text("Name is required.")
    page.get_by_label("Name").fill("Cy Q. Buyer")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#form-message")).to_have_text("Your profile is saved.")
    page.reload()
    expect(page.get_by_label("Name")).to_have_value("Cy Q. Buyer")
    assert w.errors == [], w.errors


def test_the_organizer_watches_the_dashboard_move_while_a_buyer_buys(browser, new_page, make_event):
    event_id = make_event("Dashboard Disco Night")
    organizer = new_page()
    login = organizer.page.context.request.post(
        f"{BASE}/api/auth/login",
        data={"email": os.environ["EVENTLY_BROWSER_ADMIN_EMAIL"], "password": os.environ["EVENTLY_BROWSER_ADMIN_PASSWORD"]},
    )
    assert login.status == 200
    board = organizer.page
    board.goto(f"/dashboard/events/{event_id}")
    expect(board.get_by_role("heading", name="Sales of Dashboard Disco Night")).to_be_visible()
    expect(board.locator("[data-figure=sold]")).to_have_text("0")

    buyer = new_page()
    sign_up(buyer)
    buyer.page.goto(f"/events/{event_id}")
    seat(buyer.page, "B-1-1").click()
    seat(buyer.page, "B-1-2").click()
    buyer.page.get_by_role("button", name="Hold selected seats").click()
    buyer.page.get_by_role("button", name="Pay and get tickets").click()
    buyer.page.wait_for_url(re.compile(r"/orders"))

    expect(board.locator("[data-figure=sold]")).to_have_text("2", timeout=15_000)
    expect(board.locator("[data-figure=orders]")).to_have_text("1")
    expect(board.locator("[data-figure=revenue]")).to_have_text("€50")
    board.reload()
    expect(board.locator("svg.chart rect")).not_to_have_count(0)
    screenshots(board, "dashboard")
    assert organizer.errors == [] and buyer.errors == [], (organizer.errors, buyer.errors)


def test_an_event_named_script_shows_as_text_and_runs_nothing(new_page, make_event):
    name = "<script>alert(1)</script> Gala"
    event_id = make_event(name, search_word="gala")
    w = new_page()
    page = w.page

    page.goto("/?q=gala")
    expect(page.locator("#results").get_by_role("link", name=name)).to_be_visible()
    page.goto(f"/events/{event_id}")
    expect(page.get_by_role("heading", name=name)).to_be_visible()

    assert w.dialogs == []
    assert w.errors == [], w.errors


def test_each_page_weighs_under_100_kb_compressed(new_page, make_event):
    event_id = make_event("Budget Brass Band")
    w = new_page()
    page = w.page
    sizes = {}
    weights = {}

    def record(response):
        kind = response.request.resource_type
        if kind in ("document", "script", "stylesheet", "xhr", "fetch") and response.status == 200:
            try:
                weights[response.url] = gz(response.body())
            except Exception:  # a stream (the availability SSE) has no body to weigh
                pass

    page.on("response", record)
    sign_up(w)
    pages = [
        ("events", "/"),
        ("event", f"/events/{event_id}"),
        ("orders", "/orders"),
        ("profile", "/profile"),
        ("signin", "/signin"),
    ]
    for name, path in pages:
        weights.clear()
        page.goto(path)
        page.wait_for_load_state("networkidle")
        sizes[name] = {"bytes_gzip": sum(weights.values()), "files": len(weights)}

    with open(os.path.join(OUT, "budget.json"), "w") as f:
        json.dump(sizes, f, indent=2)
    for name, size in sizes.items():
        assert size["bytes_gzip"] <= 100 * 1024, (name, size)
