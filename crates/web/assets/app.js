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
    init.headers["Content-Type"] = "application/json";
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
  return { ok: res.ok, status: res.status, data, retryAfter: res.headers.get("Retry-After") };
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
      intent: null,
      amount: null,
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

  async function newIntent() {
    const result = await api("POST", "/api/orders/payments/intent", { holdId: hold.holdId });
    if (!result.ok) {
      if (slug(result) === "hold-expired") expire();
      show(payMessage, human(result));
      return false;
    }
    hold.intent = { id: result.data.paymentIntentId, secret: result.data.clientSecret };
    hold.amount = money(result.data.amount, result.data.currency);
    save();
    return true;
  }

  async function openCheckout() {
    for (const g of seats.values()) describe(g);
    renderSelection();
    el("pick").hidden = true;
    el("pay").hidden = false;
    el("held-seats").textContent = hold.seatIds.map(seatWords).join("; ");
    show(payMessage, "");
    if (!hold.intent) await newIntent();
    el("held-total").textContent = hold.amount || "";
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

  async function pay(card) {
    if (!hold.intent && !(await newIntent())) return;
    el("held-total").textContent = hold.amount || "";
    if (!hold.paid) {
      const confirmed = await api("POST", "/api/orders/payments/confirm", {
        paymentIntentId: hold.intent.id,
        clientSecret: hold.intent.secret,
        paymentMethod: card,
      });
      if (!confirmed.ok) {
        // A declined intent is final: the next attempt pays with a new one.
        if (slug(confirmed) === "payment-declined") {
          hold.intent = null;
          save();
        }
        if (slug(confirmed) === "hold-expired") return expire();
        return show(payMessage, human(confirmed));
      }
      hold.paid = true;
      save();
    }
    await purchase();
  }

  // The purchase carries the checkout's one Idempotency-Key: a second click, a retry or a
  // reload replays the first answer instead of buying again.
  async function purchase() {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const bought = await api(
        "POST",
        "/api/orders/purchase",
        { eventId, holdId: hold.holdId, seatIds: hold.seatIds, paymentIntentId: hold.intent.id },
        { "Idempotency-Key": hold.key },
      );
      if (bought.ok) {
        clearInterval(timer);
        hold = null;
        save();
        location.assign(`/orders#order-${bought.data.orderId}`);
        return;
      }
      if (slug(bought) !== "request-in-flight") {
        if (slug(bought) === "hold-expired") return expire();
        return show(payMessage, human(bought));
      }
      await new Promise((r) => setTimeout(r, 1000 * Number(bought.retryAfter || 1)));
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
      intent: null,
      amount: null,
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
    } else if (found.ok && found.data.status === "purchased" && saved.paid) {
      // Bought, but the answer was lost: the same key replays the order.
      hold = saved;
      await purchase();
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

function initDashboard(root) {
  const eventId = root.dataset.event;
  const status = document.getElementById("live-state");
  if (!window.EventSource) return;
  const set = (name, value) => {
    const cell = root.querySelector(`[data-figure=${name}]`);
    if (cell) cell.textContent = String(value);
  };
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
  });
  stream.addEventListener("error", () => {
    status.textContent = "Reconnecting to the live figures…";
  });
  window.addEventListener("pagehide", () => stream.close());
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
resumeSession();
