// The demo page: sign in with Stack Auth from the browser, as a Stack frontend does, and call
// the example app with the tokens. Plain browser JavaScript, no library and no build step.
//
// Tokens live in one of two stores, as in Stack's JS SDK:
// - "header" mode: localStorage; every call to the app carries the x-stack-auth JSON header
//   {"accessToken": ..., "refreshToken": ...}.
// - "cookie" mode: Stack's own cookies (stack-access and stack-refresh-<project>--default),
//   which the browser sends to the app by itself; no header at all.
// When the app refreshed an expired access token (STACK_SILENT_REFRESH), its answer carries
// the new one in x-stack-refreshed-access-token, and the page stores it.
"use strict";

const TOKENS_KEY = "fastapi-stack-auth-demo:tokens";
const MODE_KEY = "fastapi-stack-auth-demo:mode";
const REFRESHED_HEADER = "x-stack-refreshed-access-token";
const DAY_SECONDS = 24 * 3600;

let config = null; // {api_url, project_id, publishable_client_key, cookies, silent_refresh}

const byId = (id) => document.getElementById(id);

// --- token stores ----------------------------------------------------------------------------

function parseJson(text) {
  if (typeof text !== "string") return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function validTokens(value) {
  if (value === null || typeof value !== "object") return null;
  const { accessToken, refreshToken } = value;
  if (typeof refreshToken !== "string" || !refreshToken) return null;
  return { accessToken: typeof accessToken === "string" ? accessToken : null, refreshToken };
}

const localStore = {
  get() {
    return validTokens(parseJson(localStorage.getItem(TOKENS_KEY)));
  },
  set(tokens) {
    localStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
  },
  clear() {
    localStorage.removeItem(TOKENS_KEY);
  },
};

// A cookie value holds only some ASCII characters: percent-encode the rest (quotes, commas,
// semicolons, backslashes, spaces, "%" itself and anything outside ASCII), as js-cookie does
// for Stack's SDK. JSON's braces, brackets and colons stay as they are.
function encodeCookieValue(text) {
  return text.replace(/[^\x21\x23\x24\x26-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]/gu, (c) =>
    encodeURIComponent(c),
  );
}

function readCookies() {
  const jar = {};
  for (const pair of document.cookie.split(";")) {
    const at = pair.indexOf("=");
    if (at < 0) continue;
    const name = pair.slice(0, at).trim();
    try {
      jar[name] = decodeURIComponent(pair.slice(at + 1).trim());
    } catch {
      // a value that is not percent-encoded UTF-8 is not one of Stack's
    }
  }
  return jar;
}

function writeCookie(name, value, maxAgeSeconds) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie =
    `${name}=${encodeCookieValue(value)}; Path=/; Max-Age=${maxAgeSeconds}; SameSite=Lax${secure}`;
}

const cookieStore = {
  refreshName() {
    return `stack-refresh-${config.project_id}--default`;
  },
  get() {
    const jar = readCookies();
    const refresh = parseJson(jar[this.refreshName()]);
    if (refresh === null || typeof refresh.refresh_token !== "string") return null;
    // As Stack's SDK: the access cookie counts only next to the refresh token it came with.
    const access = parseJson(jar["stack-access"]);
    const paired = Array.isArray(access) && access[0] === refresh.refresh_token;
    return validTokens({
      accessToken: paired ? access[1] : null,
      refreshToken: refresh.refresh_token,
    });
  },
  set(tokens) {
    const refresh = { refresh_token: tokens.refreshToken, updated_at_millis: Date.now() };
    writeCookie(this.refreshName(), JSON.stringify(refresh), 365 * DAY_SECONDS);
    writeCookie("stack-access", JSON.stringify([tokens.refreshToken, tokens.accessToken]), DAY_SECONDS);
  },
  clear() {
    for (const name of [this.refreshName(), "stack-access"]) writeCookie(name, "", 0);
  },
};

function cookieMode() {
  return Boolean(config && config.cookies) && localStorage.getItem(MODE_KEY) === "cookie";
}

function store() {
  return cookieMode() ? cookieStore : localStore;
}

function setMode(cookies) {
  const tokens = store().get();
  store().clear();
  localStorage.setItem(MODE_KEY, cookies ? "cookie" : "header");
  if (tokens !== null) store().set(tokens);
  render();
}

// --- what a token says (shown, never trusted: the app verifies it) ----------------------------

function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

// --- Stack Auth (or the emulator), called from the browser with client access ----------------

async function stackCall(method, path, { body, accessToken, refreshToken } = {}) {
  const headers = {
    "x-stack-access-type": "client",
    "x-stack-project-id": config.project_id,
  };
  if (config.publishable_client_key) {
    headers["x-stack-publishable-client-key"] = config.publishable_client_key;
  }
  if (accessToken) headers["x-stack-access-token"] = accessToken;
  if (refreshToken) headers["x-stack-refresh-token"] = refreshToken;
  const init = { method, headers, credentials: "omit" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const response = await fetch(`${config.api_url}/api/v1${path}`, init);
    return { status: response.status, data: parseJson(await response.text()) };
  } catch (error) {
    return { status: 0, data: { error: `Stack Auth could not be reached: ${error}` } };
  }
}

function stackStatus(what, answer) {
  const line = byId("stack-status");
  const ok = answer.status >= 200 && answer.status < 300;
  const code = answer.data && answer.data.code ? ` ${answer.data.code}` : "";
  line.textContent = `${what}: ${answer.status || "failed"}${code}`;
  if (!ok && answer.data && answer.data.error) line.textContent += ` (${answer.data.error})`;
  line.className = `status-line ${ok ? "ok" : "error"}`;
  return ok;
}

async function signInOrUp(kind) {
  const email = byId("email").value.trim();
  const password = byId("password").value;
  const path = kind === "sign-up" ? "/auth/password/sign-up" : "/auth/password/sign-in";
  const answer = await stackCall("POST", path, { body: { email, password } });
  if (stackStatus(kind, answer)) {
    store().set({ accessToken: answer.data.access_token, refreshToken: answer.data.refresh_token });
    byId("password").value = "";
  }
  render();
}

// A new access token from Stack for the stored refresh token (what the SDK does by itself).
async function refreshAccessToken() {
  const tokens = store().get();
  if (tokens === null) return null;
  const answer = await stackCall("POST", "/auth/sessions/current/refresh", {
    refreshToken: tokens.refreshToken,
  });
  if (!stackStatus("refresh", answer)) return null;
  const refreshed = { ...tokens, accessToken: answer.data.access_token };
  store().set(refreshed);
  render();
  return refreshed;
}

async function signOut() {
  let tokens = store().get();
  if (tokens !== null) {
    let answer = await stackCall("DELETE", "/auth/sessions/current", {
      accessToken: tokens.accessToken,
    });
    const expired = answer.data && answer.data.code === "ACCESS_TOKEN_EXPIRED";
    if (expired && (tokens = await refreshAccessToken()) !== null) {
      answer = await stackCall("DELETE", "/auth/sessions/current", {
        accessToken: tokens.accessToken,
      });
    }
    stackStatus("sign-out", answer);
  }
  // Signed out on this page whatever Stack said: the tokens are dropped.
  localStore.clear();
  cookieStore.clear();
  render();
}

async function createApiKey() {
  const tokens = store().get();
  const body = { user_id: "me", description: "fastapi-stack-auth demo page", expires_at_millis: null };
  const answer = await stackCall("POST", "/user-api-keys", {
    body,
    accessToken: tokens && tokens.accessToken,
  });
  if (stackStatus("create API key", answer)) byId("api-key").value = answer.data.value;
}

// --- the example app ---------------------------------------------------------------------------

const CALLS = {
  public: { method: "GET", path: () => "/public" },
  hello: { method: "GET", path: () => "/hello" },
  me: { method: "GET", path: () => "/me" },
  claims: { method: "GET", path: () => "/claims" },
  team: {
    method: "DELETE",
    path: () => `/teams/${encodeURIComponent(byId("team-id").value.trim() || "-")}/docs/demo`,
  },
  admin: { method: "GET", path: () => "/admin/stats" },
  ingest: { method: "POST", path: () => "/ingest", apiKey: true },
};

async function callApp(name) {
  const call = CALLS[name];
  const headers = {};
  const tokens = store().get();
  const apiKey = call.apiKey ? byId("api-key").value.trim() : "";
  let credentials = "same-origin"; // cookie mode: the browser sends Stack's cookies itself
  if (apiKey) {
    headers["x-stack-api-key"] = apiKey;
    credentials = "omit"; // one credential per request: the key alone
  } else if (tokens !== null && !cookieMode()) {
    headers["x-stack-auth"] = JSON.stringify(tokens);
  }
  const row = byId(`row-${name}`);
  const status = row.querySelector(".status");
  const body = row.querySelector(".body");
  status.textContent = "…";
  body.textContent = "";
  let response;
  try {
    response = await fetch(call.path(), { method: call.method, headers, credentials });
  } catch (error) {
    status.textContent = "failed";
    body.textContent = String(error);
    return;
  }
  const refreshed = response.headers.get(REFRESHED_HEADER);
  if (refreshed && tokens !== null) {
    store().set({ ...tokens, accessToken: refreshed });
    render();
  }
  const text = await response.text();
  const data = parseJson(text);
  status.textContent = String(response.status);
  status.className = `status ${response.ok ? "ok" : "error"}`;
  body.textContent = data === null ? text : JSON.stringify(data, null, 2);
  row.dataset.refreshed = refreshed ? "true" : "false";
}

// --- the page ----------------------------------------------------------------------------------

function render() {
  const tokens = store().get();
  const claims = tokens && tokens.accessToken ? claimsOf(tokens.accessToken) : null;
  byId("signed-in").hidden = tokens === null;
  byId("signed-out").hidden = tokens !== null;
  byId("cookie-mode").checked = cookieMode();
  if (tokens === null) return;
  byId("user-email").textContent = (claims && (claims.email || claims.name)) || "(no email)";
  byId("user-id").textContent = (claims && claims.sub) || "";
  byId("user-team").textContent = (claims && claims.selected_team_id) || "(none)";
  const team = byId("team-id");
  if (!team.value && claims && claims.selected_team_id) team.value = claims.selected_team_id;
  const expiry = byId("token-expiry");
  if (claims && typeof claims.exp === "number") {
    const when = new Date(claims.exp * 1000);
    const expired = when.getTime() <= Date.now();
    expiry.textContent = `${when.toLocaleTimeString()}${expired ? " (expired)" : ""}`;
    expiry.className = expired ? "error" : "";
  } else {
    expiry.textContent = "(no access token)";
  }
}

async function start() {
  const response = await fetch("/demo/config.json");
  config = await response.json();
  const key = config.publishable_client_key ? ", with its publishable key" : "";
  byId("stack-target").textContent =
    `Stack Auth: ${config.api_url} (project ${config.project_id}${key})`;
  const toggle = byId("cookie-mode");
  toggle.disabled = !config.cookies;
  byId("cookie-note").textContent = config.cookies
    ? "The app reads Stack's cookies (STACK_COOKIES) when a request has no credential header."
    : "The app does not read cookies: start it with STACK_COOKIES=true to try them.";
  if (config.silent_refresh) {
    byId("cookie-note").textContent +=
      " An expired access token is refreshed by the app (STACK_SILENT_REFRESH).";
  }

  byId("credentials").addEventListener("submit", (event) => {
    event.preventDefault();
    signInOrUp("sign-in");
  });
  byId("sign-up").addEventListener("click", () => {
    if (byId("credentials").reportValidity()) signInOrUp("sign-up");
  });
  byId("sign-out").addEventListener("click", signOut);
  byId("refresh").addEventListener("click", refreshAccessToken);
  byId("create-key").addEventListener("click", createApiKey);
  toggle.addEventListener("change", () => setMode(toggle.checked));
  for (const button of document.querySelectorAll("button[data-call]")) {
    button.addEventListener("click", () => callApp(button.dataset.call));
  }
  render();
  document.body.dataset.ready = "true";
}

start();
