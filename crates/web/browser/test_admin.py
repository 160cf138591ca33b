"""The admin's pages in a real browser: a user made an organizer from the users page (who then
sees the organizer's pages), and the platform settings saved with If-Match."""

import os
import re
import uuid

from conftest import BASE, call, screenshots
from playwright.sync_api import expect


def sign_in_admin(watched):
    login = watched.page.context.request.post(
        f"{BASE}/api/auth/login",
        data={"email": os.environ["EVENTLY_BROWSER_ADMIN_EMAIL"], "password": os.environ["EVENTLY_BROWSER_ADMIN_PASSWORD"]},
    )
    assert login.status == 200, login.text()


def test_an_admin_makes_a_user_an_organizer(new_page, admin_token):
    stem = f"promo-{uuid.uuid4().hex[:8]}"
    email = f"{stem}@browser.example"
    status, made = call("POST", "/api/auth/register", {"email": email, "password": "promoted-pass-1", "name": "Pia Promoted"})
    assert status == 201, made

    w = new_page()
    sign_in_admin(w)
    page = w.page
    page.goto("/")
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    page.get_by_label("Email or name starts with").fill(stem)
    page.get_by_role("button", name="Find").click()
    page.wait_for_url(re.compile(r"/admin/users\?q=promo-"))
    expect(page.locator("li.card")).to_have_count(1)
    page.get_by_label(f"Role of {email}", exact=True).select_option("organizer")
    page.get_by_role("button", name=f"Save the role of {email}").click()
    expect(page.locator("#users-message")).to_contain_text(f"{email} is now an organizer")
    screenshots(page, "admin-users")

    # The role holds after a reload, in the listing filtered by role.
    page.goto(f"/admin/users?q={stem}&role=organizer")
    expect(page.get_by_label(f"Role of {email}", exact=True)).to_have_value("organizer")

    # The promoted user signs in and finds the organizer's pages.
    promoted = new_page(width=360)
    login = promoted.page.context.request.post(f"{BASE}/api/auth/login", data={"email": email, "password": "promoted-pass-1"})
    assert login.status == 200
    promoted.page.goto("/")
    promoted.page.get_by_role("link", name="My events").click()
    expect(promoted.page.get_by_role("heading", name="My events")).to_be_visible()
    assert w.errors == [] and promoted.errors == [], (w.errors, promoted.errors)


def test_an_admin_saves_platform_settings(new_page):
    w = new_page()
    sign_in_admin(w)
    page = w.page
    page.goto("/admin/settings")
    seats = page.get_by_label("Most seats in one order (1 to 100)")
    seats.fill("500")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#set-seats-error")).to_be_visible()
    expect(seats).to_have_attribute("aria-invalid", "true")
    seats.fill("12")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#form-message")).to_have_text("The platform settings are saved.")
    screenshots(page, "admin-settings")
    page.reload()
    expect(seats).to_have_value("12")

    # Back to the default, so other tests see booking's usual limits.
    seats.fill("")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#form-message")).to_have_text("The platform settings are saved.")
    page.reload()
    expect(seats).to_have_value("")
    assert w.errors == [], w.errors
