// evently's web client module: accounts, the seat map, checkout and orders.
//
// Every change goes to the JSON API with fetch (same origin: the HttpOnly session cookies ride
// along, the browser sends Origin, and the gateway applies its CSRF rule). No inline scripts
// or handlers: the pages' CSP allows scripts from this origin only.

const SESSION_FLAG = "evently.session";

// ---- the API -----------------------------------------------------------------------------

async function send(method, path, body, headers) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", ...(headers || {}) },
  };
  if (body !== undefined) {
    if (!init.headers["Content-Type"]) init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}

/** Calls the API; answers {ok, status, data, retryAfter}, never throws. */
export async function api(method, path, body, headers) {
  let res;
  try {
    res = await send(method, path, body, headers);
    // An expired access token: rotate the refresh token (its cookie is sent to /api/auth)
    // once and try again.
    if (res.status === 401 && !path.startsWith("/api/auth/") && localStorage.getItem(SESSION_FLAG)) {
      const refreshed = await send("POST", "/api/auth/refresh");
      if (refreshed.ok) res = await send(method, path, body, headers);
    }
  } catch {
    return { ok: false, status: 0, data: null, retryAfter: null };
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  return {
    ok: res.ok,
    status: res.status,
    data,
    retryAfter: res.headers.get("Retry-After"),
    etag: res.headers.get("ETag"),
  };
}

function slug(result) {
  const type = (result.data && result.data.type) || "";
  return type.split("/").pop();
}

function sentence(text) {
  const t = String(text).trim();
  if (!t) return "";
  const s = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : s + ".";
}

/** A problem+json answer as a sentence for people (never the raw JSON). */
export function human(result) {
  const data = result.data || {};
  if (result.status === 0) return "We could not reach evently. Check your connection and try again.";
  if (result.status === 429) {
    return `You are going a little fast. Please try again in ${result.retryAfter || 5} seconds.`;
  }
  switch (slug(result)) {
    case "seats-unavailable":
      return "Some of those seats were just taken by someone else. They are marked on the map; the rest of your selection is kept.";
    case "sold-out":
      return "There are not enough seats left for that.";
    case "not-on-sale":
      return "Tickets for this event are not on sale right now.";
    case "hold-expired":
      return "Your hold has expired and the seats were released. Please choose seats again.";
    case "payment-declined":
      return "Your card was declined and nothing was charged. Please try another card.";
    case "payment-processor-error":
      return "The payment service had a problem and nothing was charged. Please try again.";
    case "email-taken":
      return "An account with this email already exists. Sign in instead.";
    case "order-cancelled":
      return "This order is already cancelled.";
    case "request-in-flight":
      return "Your purchase is still being processed. Please wait a moment.";
    default:
      break;
  }
  if (result.status === 401) return "Please sign in to continue.";
  if (result.status === 403) return "You are not allowed to do that.";
  if (result.status >= 500) return "Something went wrong on our side. Please try again in a moment.";
  return sentence(data.detail || data.title || "That did not work. Please try again");
}

function show(el, text) {
  if (!el) return;
  el.textContent = text;
  el.hidden = !text;
}

function money(amount, currency) {
  const symbols = { EUR: "€", USD: "$", GBP: "£" };
  const units = amount % 100 === 0 ? String(amount / 100) : (amount / 100).toFixed(2);
  return symbols[currency] ? symbols[currency] + units : `${currency} ${units}`;
}

function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- accounts ----------------------------------------------------------------------------

function initAccount(form) {
  const signup = form.dataset.mode === "signup";
  const message = document.getElementById("form-message");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    show(message, "");
    for (const name of ["name", "email", "password"]) {
      const input = form.elements.namedItem(name);
      if (input) input.removeAttribute("aria-invalid");
      show(document.getElementById(`${name}-error`), "");
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const value = (name) => (form.elements.namedItem(name) ? form.elements.namedItem(name).value : "");
    const credentials = { email: value("email").trim(), password: value("password") };
    try {
      if (signup) {
        const made = await api("POST", "/api/auth/register", { ...credentials, name: value("name").trim() });
        if (!made.ok) return fail(made);
      }
      const login = await api("POST", "/api/auth/login", credentials);
      if (!login.ok) {
        if (login.status === 401) return show(message, "The email or password is incorrect.");
        return fail(login);
      }
      localStorage.setItem(SESSION_FLAG, "1");
      location.assign(form.dataset.next || "/");
    } finally {
      button.disabled = false;
    }
  });

  function fail(result) {
    fieldErrors(form, result, message);
  }
}

async function signOut() {
  await api("POST", "/api/auth/logout");
  localStorage.removeItem(SESSION_FLAG);
  sessionStorage.clear();
  location.assign("/");
}

// A page rendered without a session cookie while this browser had a session: the access
// token expired. Rotate the refresh token once per tab and show the page signed in.
async function resumeSession() {
  if (document.body.dataset.session !== "no" || !localStorage.getItem(SESSION_FLAG)) return;
  if (sessionStorage.getItem("evently.resumed")) return;
  sessionStorage.setItem("evently.resumed", "1");
  const refreshed = await api("POST", "/api/auth/refresh");
  if (refreshed.ok) location.reload();
  else localStorage.removeItem(SESSION_FLAG);
}

// ---- the seat map and checkout -----------------------------------------------------------

const STATE_WORDS = { available: "available", held: "held", reserved: "sold" };

function initCheckout(root) {
  const eventId = root.dataset.event;
  const currency = root.dataset.currency;
  const prices = JSON.parse(root.dataset.prices || "{}");
  const waitlistOpen = root.dataset.waitlist === "yes";
  const storageKey = `evently.checkout.${eventId}`;
  const seats = new Map();
  for (const g of root.querySelectorAll("g.seat")) seats.set(g.dataset.seat, g);
  const selected = new Set();
  const el = (id) => document.getElementById(id);
  const pickMessage = el("pick-message");
  const payMessage = el("pay-message");
  const payButton = el("pay-button");
  let hold = null;
  let timer = null;
  let paying = false;

  function seatWords(id) {
    const g = seats.get(id);
    return g ? g.dataset.label : id;
  }

  function describe(g) {
    const id = g.dataset.seat;
    let words = STATE_WORDS[g.dataset.state] || "unavailable";
    if (hold && hold.seatIds.includes(id)) words = "held for you";
    else if (selected.has(id)) words = "selected";
    g.setAttribute("aria-label", `${g.dataset.label}, ${words}`);
    g.setAttribute("aria-pressed", selected.has(id) ? "true" : "false");
    g.classList.toggle("selected", selected.has(id));
    g.classList.toggle("mine", Boolean(hold && hold.seatIds.includes(id)));
    if (g.dataset.state === "available") g.removeAttribute("aria-disabled");
    else g.setAttribute("aria-disabled", "true");
  }

  function renderSelection() {
    const list = el("selection");
    list.replaceChildren();
    let total = 0;
    for (const id of selected) {
      const g = seats.get(id);
      const price = Number(g.dataset.price);
      total += price;
      const item = document.createElement("li");
      item.append(`${g.dataset.label.replace(/, [^,]*$/, "")} · ${money(price, currency)} `);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${seatWords(id)}`);
      remove.addEventListener("click", () => {
        selected.delete(id);
        describe(g);
        renderSelection();
      });
      item.append(remove);
      list.append(item);
    }
    el("selection-empty").hidden = selected.size > 0;
    el("total").textContent = selected.size ? money(total, currency) : "–";
    const holdButton = el("hold");
    if (holdButton) holdButton.disabled = selected.size === 0 || Boolean(hold);
  }

  function toggle(g) {
    show(pickMessage, "");
    if (hold) {
      show(pickMessage, "Pay for or release the seats you hold before choosing others.");
      return;
    }
    const id = g.dataset.seat;
    if (!selected.has(id) && g.dataset.state !== "available") {
      show(pickMessage, `${g.dataset.label} is ${STATE_WORDS[g.dataset.state] || "unavailable"}.`);
      return;
    }
    if (selected.has(id)) selected.delete(id);
    else selected.add(id);
    describe(g);
    renderSelection();
  }

  const map = root.querySelector("svg.seatmap");
  if (map) {
    map.addEventListener("click", (event) => {
      const g = event.target.closest("g.seat");
      if (g) toggle(g);
    });
    map.addEventListener("keydown", (event) => {
      const g = event.target.closest("g.seat");
      if (g && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        toggle(g);
      }
    });
  }

  // -- holds

  async function takeHold(body) {
    show(pickMessage, "");
    const result = await api("POST", "/api/orders/holds", { eventId, ...body });
    if (result.status === 401) {
      const next = encodeURIComponent(location.pathname);
      show(pickMessage, "Please sign in to hold seats.");
      const link = document.createElement("a");
      link.href = `/signin?next=${next}`;
      link.textContent = " Sign in";
      pickMessage.append(link);
      return;
    }
    if (!result.ok) {
      for (const id of (result.data && result.data.conflicts) || []) {
        const g = seats.get(id);
        if (!g) continue;
        g.dataset.state = "held";
        selected.delete(id);
        describe(g);
      }
      renderSelection();
      if (slug(result) === "sold-out") el("waitlist").hidden = false;
      return show(pickMessage, human(result));
    }
    const h = result.data;
    hold = {
      holdId: h.holdId,
      seatIds: h.seatIds,
      expiresAt: Date.now() + h.expiresInSeconds * 1000,
      key: randomKey(),
      card: null,
    };
    selected.clear();
    save();
    await openCheckout();
  }

  el("hold")?.addEventListener("click", () => takeHold({ seatIds: [...selected] }));
  el("best").addEventListener("submit", (event) => {
    event.preventDefault();
    if (hold) return show(pickMessage, "Pay for or release the seats you hold before choosing others.");
    const quantity = Number(el("best-n").value);
    if (!Number.isInteger(quantity) || quantity < 1) {
      return show(pickMessage, "Enter how many tickets you want (1 or more).");
    }
    takeHold({ quantity });
  });

  function save() {
    if (hold) sessionStorage.setItem(storageKey, JSON.stringify(hold));
    else sessionStorage.removeItem(storageKey);
  }

  // What the hold costs: each seat at its section's price, or the event's base price (the
  // server's rule; the checkout charges what it computes).
  function holdTotal(seatIds) {
    const sections = prices.sections || {};
    return seatIds.reduce((sum, id) => {
      const section = id.split("-")[0];
      return sum + (section in sections ? sections[section] : prices.base || 0);
    }, 0);
  }

  async function openCheckout() {
    for (const g of seats.values()) describe(g);
    renderSelection();
    el("pick").hidden = true;
    el("pay").hidden = false;
    el("held-seats").textContent = hold.seatIds.map(seatWords).join("; ");
    show(payMessage, "");
    el("held-total").textContent = money(holdTotal(hold.seatIds), currency);
    tick();
    clearInterval(timer);
    timer = setInterval(tick, 1000);
    el("pay-h").focus?.();
  }

  function closeCheckout() {
    clearInterval(timer);
    hold = null;
    save();
    el("pay").hidden = true;
    el("pick").hidden = false;
    for (const g of seats.values()) describe(g);
    renderSelection();
  }

  function tick() {
    const left = Math.max(0, Math.round((hold.expiresAt - Date.now()) / 1000));
    el("countdown-time").textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    if (left === 0) expire();
  }

  function expire() {
    closeCheckout();
    show(pickMessage, "Your hold has expired and the seats were released. Please choose seats again.");
    refreshSeats();
  }

  el("release").addEventListener("click", async () => {
    if (!hold) return;
    await api("DELETE", `/api/orders/holds/${hold.holdId}`);
    closeCheckout();
    show(pickMessage, "Your seats were released.");
    refreshSeats();
  });

  el("pay-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (paying || !hold) return;
    paying = true;
    payButton.disabled = true;
    show(payMessage, "");
    try {
      await pay(new FormData(event.target).get("card"));
    } finally {
      paying = false;
      payButton.disabled = false;
    }
  });

  // One checkout pays and buys. The request carries the attempt's one Idempotency-Key: a
  // second click, a retry or a reload replays the first answer instead of buying again. A
  // declined card's answer is final for its key, so the next card gets a new key.
  async function pay(card) {
    if (hold.card !== card) {
      hold.card = card;
      save();
    }
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const bought = await api(
        "POST",
        "/api/orders/checkout",
        { eventId, holdId: hold.holdId, seatIds: hold.seatIds, paymentMethod: card },
        { "Idempotency-Key": hold.key },
      );
      if (bought.ok) {
        clearInterval(timer);
        hold = null;
        save();
        location.assign(`/orders#order-${bought.data.orderId}`);
        return;
      }
      if (slug(bought) === "request-in-flight") {
        await new Promise((r) => setTimeout(r, 1000 * Number(bought.retryAfter || 1)));
        continue;
      }
      if (slug(bought) === "payment-declined") {
        hold.key = randomKey();
        hold.card = null;
        save();
      }
      if (slug(bought) === "hold-expired") return expire();
      return show(payMessage, human(bought));
    }
    show(payMessage, "Your purchase is still being processed. Check My orders in a moment.");
  }

  // -- live seat states

  let refreshing = false;
  let again = false;
  async function refreshSeats() {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    const result = await api("GET", `/api/orders/seats/${eventId}`);
    if (result.ok) {
      const lost = [];
      for (const seat of result.data.seats) {
        const g = seats.get(seat.seatId);
        if (!g || g.dataset.state === seat.state) continue;
        g.dataset.state = seat.state;
        if (selected.has(seat.seatId) && seat.state !== "available") {
          selected.delete(seat.seatId);
          lost.push(g.dataset.label);
        }
        describe(g);
      }
      if (lost.length) {
        renderSelection();
        show(pickMessage, `Just taken by someone else: ${lost.join("; ")}. The rest of your selection is kept.`);
      }
    }
    // At most one refresh a second, whatever the stream's pace.
    setTimeout(() => {
      refreshing = false;
      if (again) {
        again = false;
        refreshSeats();
      }
    }, 1000);
  }

  let version = null;
  if (window.EventSource) {
    const stream = new EventSource(`/api/events/${eventId}/availability/stream`);
    stream.addEventListener("availability", (event) => {
      let view;
      try {
        view = JSON.parse(event.data);
      } catch {
        return;
      }
      el("available-count").textContent = String(view.available);
      if (view.available === 0 && waitlistOpen) el("waitlist").hidden = false;
      if (version !== null && view.version !== version) {
        if (seats.size) refreshSeats();
        if (waiting) checkWaitlist();
      }
      version = view.version;
    });
    window.addEventListener("pagehide", () => stream.close());
  }

  // -- the waitlist: join when sold out; an offer opens the checkout with its hold

  let waiting = null;
  const waitStatus = el("wait-status");

  function showWaiting(entry) {
    waiting = entry && (entry.status === "waiting" || entry.status === "offered") ? entry : null;
    el("wait-form").hidden = Boolean(waiting);
    el("wait-leave").hidden = !waiting;
    if (!waiting) return show(waitStatus, "");
    el("waitlist").hidden = false;
    if (waiting.status === "offered") {
      show(waitStatus, "Seats came back for you: they are held in your name. Pay below to get them.");
    } else {
      const n = waiting.quantity;
      show(waitStatus, `You are number ${waiting.position} on the waitlist for ${n} ticket${n === 1 ? "" : "s"}.`);
    }
  }

  async function takeOffer(holdId) {
    const found = await api("GET", `/api/orders/holds/${holdId}`);
    if (!found.ok || found.data.status !== "active") return;
    const seconds = found.data.expiresInSeconds;
    hold = {
      holdId,
      seatIds: found.data.seatIds,
      expiresAt: seconds !== undefined ? Date.now() + seconds * 1000 : Date.parse(found.data.expiresAt),
      key: randomKey(),
      card: null,
    };
    save();
    await openCheckout();
  }

  async function checkWaitlist() {
    if (document.body.dataset.session !== "yes") return;
    const found = await api("GET", `/api/events/${eventId}/waitlist`);
    if (!found.ok) return showWaiting(null);
    showWaiting(found.data);
    if (found.data.status === "offered" && found.data.holdId && !hold) await takeOffer(found.data.holdId);
  }

  el("wait-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const quantity = Number(el("wait-n").value);
    if (!Number.isInteger(quantity) || quantity < 1) {
      return show(waitStatus, "Enter how many tickets you want (1 or more).");
    }
    const joined = await api("POST", `/api/events/${eventId}/waitlist`, { quantity });
    if (joined.ok) return showWaiting(joined.data);
    if (slug(joined) === "seats-available") {
      return show(waitStatus, "Seats are available now: choose them above instead of waiting.");
    }
    show(waitStatus, joined.status === 401 ? "Please sign in to join the waitlist." : human(joined));
  });

  el("wait-leave").addEventListener("click", async () => {
    const left = await api("DELETE", `/api/events/${eventId}/waitlist`);
    if (left.ok || left.status === 404) {
      showWaiting(null);
      show(waitStatus, "You left the waitlist.");
    } else {
      show(waitStatus, human(left));
    }
  });

  // -- a checkout survives a reload

  async function restore() {
    const stored = sessionStorage.getItem(storageKey);
    if (!stored) return;
    let saved;
    try {
      saved = JSON.parse(stored);
    } catch {
      return sessionStorage.removeItem(storageKey);
    }
    const found = await api("GET", `/api/orders/holds/${saved.holdId}`);
    if (found.ok && found.data.status === "active" && saved.expiresAt > Date.now()) {
      hold = saved;
      await openCheckout();
    } else if (found.ok && found.data.status === "purchased" && saved.card) {
      // Bought, but the answer was lost: the same key and body replay the order.
      hold = saved;
      await pay(saved.card);
    } else {
      sessionStorage.removeItem(storageKey);
    }
  }

  renderSelection();
  restore().then(checkWaitlist);
}

// ---- profile -----------------------------------------------------------------------------

function fieldErrors(form, result, message) {
  const errors = (result.data && result.data.errors) || [];
  let placed = false;
  for (const error of errors) {
    const name = String(error.pointer || "").replace(/^\//, "");
    const slot = document.getElementById(`${name}-error`);
    const input = form.elements.namedItem(name);
    if (slot && input) {
      show(slot, sentence(error.detail));
      input.setAttribute("aria-invalid", "true");
      if (!placed) input.focus();
      placed = true;
    }
  }
  if (!placed) show(message, human(result));
}

async function initProfile(form) {
  const message = document.getElementById("form-message");
  const found = await api("GET", "/api/users/profile");
  if (!found.ok) {
    show(message, found.status === 401 ? "Please sign in to see your profile." : human(found));
    form.querySelector("button").disabled = true;
    return;
  }
  document.getElementById("profile-email").textContent = found.data.email;
  form.elements.namedItem("name").value = found.data.name || "";
  form.elements.namedItem("phone").value = found.data.phone || "";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    show(message, "");
    for (const name of ["name", "phone"]) {
      form.elements.namedItem(name).removeAttribute("aria-invalid");
      show(document.getElementById(`${name}-error`), "");
    }
    const phone = form.elements.namedItem("phone").value.trim();
    const saved = await api("PUT", "/api/users/profile", {
      name: form.elements.namedItem("name").value.trim(),
      ...(phone ? { phone } : {}),
    });
    if (saved.ok) show(message, "Your profile is saved.");
    else fieldErrors(form, saved, message);
  });
}

// ---- the organizer's dashboard -----------------------------------------------------------

const CHART_EVERY = 3000;

function initDashboard(root) {
  const eventId = root.dataset.event;
  const status = document.getElementById("live-state");
  if (!window.EventSource) return;
  const set = (name, value) => {
    const cell = root.querySelector(`[data-figure=${name}]`);
    if (cell) cell.textContent = String(value);
  };
  // The server draws the chart; htmx fetches it again after new figures, at most once every
  // CHART_EVERY ms, and once more after the last of a burst.
  const chart = document.getElementById("chart");
  let chartAt = 0;
  let chartTimer = null;
  function redrawChart() {
    if (!chart || chartTimer) return;
    chartTimer = setTimeout(() => {
      chartTimer = null;
      chartAt = Date.now();
      chart.dispatchEvent(new CustomEvent("chart-stale"));
    }, Math.max(0, chartAt + CHART_EVERY - Date.now()));
  }
  const stream = new EventSource(`/api/analytics/live/stream?eventIds=${encodeURIComponent(eventId)}`);
  stream.addEventListener("figures", (event) => {
    let f;
    try {
      f = JSON.parse(event.data);
    } catch {
      return;
    }
    if (f.eventId !== eventId) return;
    for (const name of ["sold", "held", "available", "orders", "cancellations"]) set(name, f[name]);
    set("revenue", (f.revenue || []).map((r) => money(r.net, r.currency)).join(" · ") || "0");
    const conversion = f.holds && f.holds.conversion;
    set("conversion", conversion === null || conversion === undefined ? "–" : `${Math.round(conversion * 100)} %`);
    status.textContent = `Figures update live (last at ${new Date().toLocaleTimeString()}).`;
    redrawChart();
  });
  stream.addEventListener("error", () => {
    status.textContent = "Reconnecting to the live figures…";
  });
  window.addEventListener("pagehide", () => stream.close());
}

// ---- forms whose fields are named by JSON pointers ------------------------------------------

// Each input carries data-pointer="/eventName" and its message slot data-error-for="/eventName";
// a 422's errors[] land next to their fields (an error about /layout/sections/0/rows/2/label
// in the nearest slot up the pointer), anything else in the form's message.

function clearErrors(form, message) {
  show(message, "");
  for (const slot of form.querySelectorAll("[data-error-for]")) show(slot, "");
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function pointerErrors(form, result, message) {
  const errors = (result.data && result.data.errors) || [];
  let first = null;
  const unplaced = [];
  for (const error of errors) {
    let pointer = String(error.pointer || "");
    let slot = null;
    while (pointer && !(slot = form.querySelector(`[data-error-for="${CSS.escape(pointer)}"]`))) {
      pointer = pointer.replace(/\/[^/]*$/, "");
    }
    if (!slot) {
      unplaced.push(sentence(`${error.pointer} ${error.detail}`));
      continue;
    }
    const words = sentence(error.detail);
    show(slot, slot.hidden || !slot.textContent ? words : `${slot.textContent} ${words}`);
    const input = form.querySelector(`[data-pointer="${CSS.escape(String(error.pointer))}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
    if (!first) first = input || slot;
  }
  if (first && first.focus) first.focus();
  if (!errors.length) show(message, human(result));
  else if (unplaced.length) show(message, unplaced.join(" "));
}

function fieldSlot(form, pointer, text) {
  const slot = form.querySelector(`[data-error-for="${CSS.escape(pointer)}"]`);
  const input = form.querySelector(`[data-pointer="${CSS.escape(pointer)}"]`);
  show(slot, text);
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

// A datetime-local value, read as UTC, in RFC 3339 ("" stays "").
function utc(value) {
  if (!value) return "";
  return value.length === 16 ? `${value}:00Z` : `${value}Z`;
}

// A price typed in units ("12.5") in minor units, or null when it is not a number.
function cents(value) {
  const text = String(value).trim().replace(",", ".");
  if (!/^\d+(\.\d{1,2})?$/.test(text)) return null;
  return Math.round(Number(text) * 100);
}

function list(value) {
  return [...new Set(String(value).split(",").map((t) => t.trim()).filter(Boolean))];
}

// ---- the organizer's events --------------------------------------------------------------

function initMyEvents(root) {
  const message = document.getElementById("org-message");
  root.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const card = button.closest("[data-event]");
    const confirm = card.querySelector(".confirm");
    const error = card.querySelector(".field-error");
    show(error, "");
    const action = button.dataset.action;
    if (action === "ask-cancel") {
      confirm.hidden = false;
      confirm.querySelector("[data-action=keep-event]").focus();
      return;
    }
    if (action === "keep-event") {
      confirm.hidden = true;
      card.querySelector("[data-action=ask-cancel]").focus();
      return;
    }
    const status = { "open-sale": "ON_SALE", "cancel-event": "CANCELLED" }[action];
    if (!status) return;
    button.disabled = true;
    const result = await api("PUT", `/api/events/${card.dataset.event}/status`, { status });
    button.disabled = false;
    if (!result.ok) return show(error, human(result));
    sessionStorage.setItem(
      "evently.org-message",
      status === "ON_SALE" ? `“${card.dataset.name}” is on sale.` : `“${card.dataset.name}” is cancelled.`,
    );
    location.reload();
  });
  const done = sessionStorage.getItem("evently.org-message");
  if (done) {
    sessionStorage.removeItem("evently.org-message");
    show(message, done);
  }
}

// ---- venues and their layout editor -------------------------------------------------------

function element(tag, attributes, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "text") el.textContent = value;
    else el.setAttribute(name, value);
  }
  el.append(...children);
  return el;
}

function errorSlot(pointer) {
  const slot = element("p", { class: "field-error", "data-error-for": pointer });
  slot.hidden = true;
  return slot;
}

function initVenueForm(form) {
  const message = document.getElementById("form-message");
  const sections = document.getElementById("sections");
  const editor = document.getElementById("layout-editor");
  const capacity = document.getElementById("capacity-field");
  const total = document.getElementById("layout-total");

  function read() {
    return [...sections.children].map((li) => ({
      name: li.querySelector("[data-role=name]").value,
      rows: [...li.querySelectorAll("[data-role=seats]")].map((input) => input.value),
    }));
  }

  function count() {
    const seats = read().flatMap((s) => s.rows).reduce((n, v) => n + (Number(v) > 0 ? Number(v) : 0), 0);
    total.textContent = `${seats} seat${seats === 1 ? "" : "s"} in all.`;
  }

  function render(state, focus) {
    sections.replaceChildren();
    state.forEach((section, i) => {
      const at = `/layout/sections/${i}`;
      const nameId = `section-${i}-name`;
      const rows = element("ol", { class: "rows" });
      section.rows.forEach((seats, j) => {
        const id = `section-${i}-row-${j}`;
        const input = element("input", {
          id,
          type: "number",
          min: "1",
          max: "1000",
          inputmode: "numeric",
          "data-role": "seats",
          "data-pointer": `${at}/rows/${j}/seats`,
        });
        input.value = seats;
        rows.append(
          element(
            "li",
            { class: "row-editor" },
            element("label", { for: id, text: `Row ${j + 1} seats` }),
            input,
            element("button", {
              type: "button",
              class: "link",
              "data-action": "remove-row",
              "data-section": String(i),
              "data-row": String(j),
              "aria-label": `Remove row ${j + 1} of section ${i + 1}`,
              text: "Remove",
            }),
            errorSlot(`${at}/rows/${j}`),
          ),
        );
      });
      const name = element("input", { id: nameId, "data-role": "name", "data-pointer": `${at}/name`, maxlength: "20" });
      name.value = section.name;
      sections.append(
        element(
          "li",
          { class: "section-editor card" },
          element(
            "div",
            { class: "field" },
            element("label", { for: nameId, text: `Section ${i + 1} name` }),
            name,
            errorSlot(`${at}/name`),
          ),
          rows,
          errorSlot(`${at}/rows`),
          errorSlot(at),
          element(
            "p",
            { class: "actions" },
            element("button", {
              type: "button",
              class: "secondary",
              "data-action": "add-row",
              "data-section": String(i),
              "aria-label": `Add a row to section ${i + 1}`,
              text: "Add a row",
            }),
            element("button", {
              type: "button",
              class: "danger",
              "data-action": "remove-section",
              "data-section": String(i),
              "aria-label": `Remove section ${i + 1}`,
              text: "Remove section",
            }),
          ),
        ),
      );
    });
    count();
    if (focus) document.getElementById(focus)?.focus();
  }

  editor.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const state = read();
    const i = Number(button.dataset.section);
    switch (button.dataset.action) {
      case "add-section": {
        const name = String.fromCharCode(65 + (state.length % 26));
        state.push({ name, rows: ["10"] });
        return render(state, `section-${state.length - 1}-name`);
      }
      case "remove-section":
        state.splice(i, 1);
        return render(state, null);
      case "add-row": {
        const rows = state[i].rows;
        rows.push(rows.length ? rows[rows.length - 1] : "10");
        return render(state, `section-${i}-row-${rows.length - 1}`);
      }
      case "remove-row":
        state[i].rows.splice(Number(button.dataset.row), 1);
        return render(state, null);
      default:
    }
  });
  sections.addEventListener("input", count);

  function seating() {
    const general = form.elements.namedItem("seating").value === "general";
    editor.hidden = general;
    capacity.hidden = !general;
    return general;
  }
  for (const radio of form.querySelectorAll("input[name=seating]")) radio.addEventListener("change", seating);

  render([{ name: "A", rows: ["10", "10"] }], null);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, message);
    const value = (name) => form.elements.namedItem(name).value.trim();
    const body = { name: value("name"), address: value("address"), city: value("city") };
    if (seating()) {
      body.capacity = Number(value("capacity")) || 0;
    } else {
      body.layout = {
        sections: read().map((s) => ({
          name: s.name.trim(),
          rows: s.rows.map((seats, j) => ({ label: String(j + 1), seats: Number(seats) || 0 })),
        })),
      };
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const made = await api("POST", "/api/venues", body);
    button.disabled = false;
    if (!made.ok) return pointerErrors(form, made, message);
    sessionStorage.setItem("evently.venue-made", JSON.stringify({ id: made.data.venueId, name: made.data.name }));
    location.reload();
  });

  const made = sessionStorage.getItem("evently.venue-made");
  if (made) {
    sessionStorage.removeItem("evently.venue-made");
    const venue = JSON.parse(made);
    const notice = element("p", { class: "notice", role: "status" }, `Venue “${venue.name}” is created. `);
    notice.append(element("a", { href: `/organizer/events/new?venue=${venue.id}`, text: "Create an event there" }));
    form.before(notice);
  }
}

// ---- the event form ----------------------------------------------------------------------

function initEventForm(form) {
  const message = document.getElementById("form-message");
  const eventId = form.dataset.event;
  const venue = form.elements.namedItem("venueId");
  const priceFields = document.getElementById("section-price-fields");
  const prices = new Map(
    (form.dataset.sectionPrices || "")
      .split("|")
      .filter(Boolean)
      .map((pair) => pair.split("=")),
  );

  function sectionsChanged() {
    for (const input of priceFields.querySelectorAll("input")) prices.set(input.dataset.section, input.value);
    const option = venue.selectedOptions[0];
    const names = option ? (option.dataset.sections || "").split("|").filter(Boolean) : [];
    document.getElementById("no-venue").hidden = Boolean(venue.value);
    document.getElementById("section-prices").hidden = names.length === 0;
    priceFields.replaceChildren(
      ...names.map((name, i) => {
        const id = `section-price-${i}`;
        const pointer = `/sectionPrices/${name}`;
        const input = element("input", {
          id,
          type: "number",
          min: "0",
          step: "0.01",
          inputmode: "decimal",
          "data-section": name,
          "data-pointer": pointer,
        });
        input.value = prices.get(name) || "";
        return element(
          "div",
          { class: "field" },
          element("label", { for: id, text: `Section ${name}` }),
          input,
          errorSlot(pointer),
        );
      }),
    );
  }
  venue.addEventListener("change", sectionsChanged);
  sectionsChanged();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, message);
    const field = (name) => form.elements.namedItem(name);
    const value = (name) => field(name).value.trim();
    const basePrice = cents(value("basePrice"));
    if (basePrice === null) return fieldSlot(form, "/basePrice", "Enter a price like 40 or 12.50 (0 for free).");
    const sectionPrices = {};
    for (const input of priceFields.querySelectorAll("input")) {
      if (!input.value.trim()) continue;
      const price = cents(input.value);
      if (price === null) return fieldSlot(form, input.dataset.pointer, "Enter a price like 40 or 12.50.");
      sectionPrices[input.dataset.section] = price;
    }
    const editing = Boolean(eventId);
    // On an edit, an emptied optional field is cleared (null); a new event just leaves it out.
    const optional = (text) => (text ? text : editing ? null : undefined);
    const body = {
      eventName: value("eventName"),
      description: optional(value("description")),
      eventDate: utc(value("eventDate")),
      eventType: optional(value("eventType")),
      tags: list(value("tags")),
      saleStartTime: utc(value("saleStartTime")),
      saleEndTime: optional(utc(value("saleEndTime"))),
      basePrice,
      currency: value("currency").toUpperCase(),
      timeZone: value("timeZone") || "UTC",
    };
    if (!document.getElementById("section-prices").hidden) body.sectionPrices = sectionPrices;
    const general = !venue.value;
    if (!editing) {
      if (general) {
        body.venueName = value("venueName");
        body.totalSeats = Number(value("totalSeats")) || 0;
      } else {
        body.venueId = venue.value;
      }
    } else if (general) {
      // A general-admission event keeps its venue name and places unless they were changed.
      if (field("venueName").value !== field("venueName").defaultValue) body.venueName = value("venueName");
      if (field("totalSeats").value !== field("totalSeats").defaultValue) {
        body.totalSeats = Number(value("totalSeats")) || 0;
      }
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const saved = editing
      ? await api("PUT", `/api/events/${eventId}`, body)
      : await api("POST", "/api/events", body);
    button.disabled = false;
    if (!saved.ok) return pointerErrors(form, saved, message);
    sessionStorage.setItem(
      "evently.org-message",
      editing ? `“${saved.data.eventName}” is saved.` : `“${saved.data.eventName}” is created. Put it on sale when you are ready.`,
    );
    location.assign(`/organizer/events#event-${saved.data.eventId}`);
  });
}

// ---- preferences -------------------------------------------------------------------------

function schemaDefault(schema, path) {
  let node = schema;
  for (const key of path) node = node && node.properties && node.properties[key];
  return node ? node.default : undefined;
}

async function initPreferences(form) {
  const message = document.getElementById("form-message");
  const [found, schema] = await Promise.all([
    api("GET", "/api/settings/me"),
    api("GET", "/api/settings/schema/preferences"),
  ]);
  if (!found.ok) {
    show(message, found.status === 401 ? "Please sign in to see your preferences." : human(found));
    form.querySelector("button[type=submit]").disabled = true;
    return;
  }
  let etag = found.etag || `"${found.data.version}"`;
  const doc = found.data.document || {};
  const rules = (schema.ok && schema.data && (schema.data.schema || schema.data)) || {};
  const pick = (path) => {
    let node = doc;
    for (const key of path) node = node && node[key];
    return node === undefined || node === null ? schemaDefault(rules, path) : node;
  };
  const field = (name) => form.elements.namedItem(name);
  field("locale").value = pick(["locale"]) || "";
  field("timeZone").value = pick(["timeZone"]) || "";
  field("currencyDisplay").value = doc.currencyDisplay || "";
  for (const key of ["email", "push", "marketing"]) field(`notifications.${key}`).checked = Boolean(pick(["notifications", key]));
  const reminder = pick(["notifications", "reminderHoursBefore"]);
  field("notifications.reminderHoursBefore").value = reminder === undefined ? "" : String(reminder);
  field("notifications.digestAddress").value = pick(["notifications", "digestAddress"]) || "";
  field("favouriteCities").value = (doc.favouriteCities || []).join(", ");
  const types = new Set(doc.favouriteEventTypes || []);
  for (const box of form.querySelectorAll("input[name=favouriteEventTypes]")) box.checked = types.has(box.value);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, message);
    const text = (name) => field(name).value.trim() || null;
    const reminderText = field("notifications.reminderHoursBefore").value.trim();
    const cities = list(field("favouriteCities").value);
    const favourite = [...form.querySelectorAll("input[name=favouriteEventTypes]:checked")].map((b) => b.value);
    // A merge patch: every field is sent; an emptied one is removed (it takes its default).
    const patch = {
      locale: text("locale"),
      timeZone: text("timeZone"),
      currencyDisplay: text("currencyDisplay"),
      notifications: {
        email: field("notifications.email").checked,
        push: field("notifications.push").checked,
        marketing: field("notifications.marketing").checked,
        reminderHoursBefore: reminderText === "" ? null : Number(reminderText),
        digestAddress: text("notifications.digestAddress"),
      },
      favouriteCities: cities.length ? cities : null,
      favouriteEventTypes: favourite.length ? favourite : null,
    };
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const saved = await api("PATCH", "/api/settings/me", patch, {
      "Content-Type": "application/merge-patch+json",
      "If-Match": etag,
    });
    button.disabled = false;
    if (saved.ok) {
      etag = saved.etag || `"${saved.data.version}"`;
      return show(message, "Your preferences are saved.");
    }
    if (saved.status === 412 || saved.status === 428) {
      return show(
        message,
        "Your preferences were changed somewhere else (another tab or device). Reload the page to see them, then make your changes again.",
      );
    }
    pointerErrors(form, saved, message);
  });
}

// ---- import ------------------------------------------------------------------------------

function initImport(form) {
  const message = document.getElementById("form-message");
  const report = document.getElementById("import-report");
  const table = document.getElementById("import-errors");
  const csv = document.getElementById("import-errors-csv");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    show(message, "");
    const file = form.elements.namedItem("file").files[0];
    if (!file) return show(message, "Choose a CSV or XLSX file first.");
    const dryRun = form.elements.namedItem("dryRun").checked;
    const mode = form.elements.namedItem("mode").value;
    const body = new FormData();
    body.append("file", file);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    let result;
    try {
      const res = await fetch(`/api/data/import/events?dryRun=${dryRun}&mode=${mode}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        body,
      });
      const text = await res.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        data = null;
      }
      result = { ok: res.ok, status: res.status, data, retryAfter: res.headers.get("Retry-After") };
    } catch {
      result = { ok: false, status: 0, data: null, retryAfter: null };
    } finally {
      button.disabled = false;
    }
    // An atomic import with invalid rows answers 422 with its report.
    const r = result.data;
    if (!r || !r.jobId) {
      report.hidden = true;
      if (result.status === 413) return show(message, "The file is too large (at most 5 MB).");
      if (result.status === 401) return show(message, "Please sign in again to import.");
      return show(message, human(result));
    }
    report.hidden = false;
    const wrote = r.dryRun
      ? "Nothing was written (check only)."
      : r.failed && r.mode === "atomic"
        ? "Nothing was written: fix the failed rows, or import the valid rows only."
        : `${r.created} created, ${r.updated} updated.`;
    document.getElementById("import-summary").textContent =
      `${r.rows} row${r.rows === 1 ? "" : "s"} read, ${r.failed} failed. ${wrote}`;
    const rows = table.querySelector("tbody");
    rows.replaceChildren(
      ...r.errors.map((e) => {
        const tr = document.createElement("tr");
        for (const value of [e.row, e.column, e.field, e.value, sentence(e.message)]) {
          tr.append(element("td", { text: value === null || value === undefined ? "" : String(value) }));
        }
        return tr;
      }),
    );
    table.hidden = r.errors.length === 0;
    csv.hidden = r.errors.length === 0;
    csv.href = `/api/data/import/jobs/${r.jobId}/errors.csv`;
    report.querySelector("h3").focus?.();
  });
}

// ---- the admin's pages --------------------------------------------------------------------

function initAdminUsers(root) {
  const message = document.getElementById("users-message");
  root.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("[data-user]");
    const error = row.querySelector(".field-error");
    show(error, "");
    show(message, "");
    button.disabled = true;
    if (button.dataset.action === "set-role") {
      const role = row.querySelector("select").value;
      const result = await api("PUT", `/api/users/${row.dataset.user}/role`, { role });
      button.disabled = false;
      if (!result.ok) return show(error, human(result));
      const article = /^[aeiou]/.test(role) ? "an" : "a";
      show(message, `${row.dataset.email} is now ${article} ${role}. The new role applies from their next sign-in or token refresh.`);
    } else if (button.dataset.action === "set-active") {
      const status = row.querySelector("[data-active]");
      const active = status.dataset.active !== "yes";
      const result = await api("PUT", `/api/users/${row.dataset.user}/status`, { active });
      button.disabled = false;
      if (!result.ok) return show(error, human(result));
      status.dataset.active = active ? "yes" : "no";
      status.textContent = active ? "Active" : "Disabled";
      button.textContent = active ? "Disable" : "Enable";
      button.className = active ? "danger" : "secondary";
      button.setAttribute("aria-label", `${active ? "Disable" : "Enable"} ${row.dataset.email}`);
      show(message, `${row.dataset.email} is ${active ? "enabled" : "disabled: their sessions are ended"}.`);
    }
  });
}

async function initPlatformSettings(form) {
  const message = document.getElementById("form-message");
  const found = await api("GET", "/api/settings/platform");
  if (!found.ok) {
    show(message, human(found));
    form.querySelector("button[type=submit]").disabled = true;
    return;
  }
  let etag = found.etag || `"${found.data.version}"`;
  const doc = found.data.document || {};
  const numbers = ["holdTtlSeconds", "maxSeatsPerOrder", "maxTicketsPerUser", "waitlistOfferSeconds"];
  const defaults = ["saleOpensDaysBefore", "saleClosesMinutesBefore"];
  const field = (name) => form.elements.namedItem(name);
  const fill = (name, value) => {
    field(name).value = value === undefined || value === null ? "" : String(value);
  };
  for (const name of numbers) fill(name, doc[name]);
  const sale = doc.saleDefaults || {};
  fill("saleDefaults.currency", sale.currency);
  for (const name of defaults) fill(`saleDefaults.${name}`, sale[name]);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, message);
    const number = (name) => {
      const text = field(name).value.trim();
      return text === "" ? null : Number(text);
    };
    // A merge patch: an emptied field is removed and takes its default again.
    const patch = { saleDefaults: { currency: field("saleDefaults.currency").value.trim().toUpperCase() || null } };
    for (const name of numbers) patch[name] = number(name);
    for (const name of defaults) patch.saleDefaults[name] = number(`saleDefaults.${name}`);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const saved = await api("PATCH", "/api/settings/platform", patch, {
      "Content-Type": "application/merge-patch+json",
      "If-Match": etag,
    });
    button.disabled = false;
    if (saved.ok) {
      etag = saved.etag || `"${saved.data.version}"`;
      return show(message, "The platform settings are saved.");
    }
    if (saved.status === 412 || saved.status === 428) {
      return show(
        message,
        "The settings were changed somewhere else meanwhile. Reload the page to see them, then make your changes again.",
      );
    }
    pointerErrors(form, saved, message);
  });
}

// ---- orders ------------------------------------------------------------------------------

function initOrders() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-action=cancel-order]");
    if (!button) return;
    button.disabled = true;
    const status = document.getElementById("orders-status");
    const result = await api("POST", `/api/orders/${button.dataset.order}/cancel`, {});
    if (result.ok) {
      show(status, "Your order was cancelled and refunded.");
      document.body.dispatchEvent(new CustomEvent("orders-changed"));
    } else {
      show(status, human(result));
      button.disabled = false;
    }
  });
}

// ---- start -------------------------------------------------------------------------------

document.addEventListener("click", (event) => {
  if (event.target.closest("[data-action=signout]")) signOut();
});
const account = document.getElementById("account");
if (account) initAccount(account);
const checkout = document.getElementById("checkout");
if (checkout) initCheckout(checkout);
if (document.getElementById("orders")) initOrders();
const dashboard = document.getElementById("dashboard");
if (dashboard) initDashboard(dashboard);
const profile = document.getElementById("profile");
if (profile) initProfile(profile);
const myEvents = document.querySelector(".org-events");
if (myEvents) initMyEvents(myEvents);
else if (document.getElementById("org-message")) initMyEvents(document.createElement("div"));
const venueForm = document.getElementById("venue-form");
if (venueForm) initVenueForm(venueForm);
const eventForm = document.getElementById("event-form");
if (eventForm) initEventForm(eventForm);
const preferences = document.getElementById("preferences");
if (preferences) initPreferences(preferences);
const users = document.querySelector(".users");
if (users) initAdminUsers(users);
const importForm = document.getElementById("import-form");
if (importForm) initImport(importForm);
const platform = document.getElementById("platform-settings");
if (platform) initPlatformSettings(platform);
resumeSession();
