#include "edge/chat/pages.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace edge {
namespace {

constexpr char kStyle[] = R"css(
body { font: 16px/1.4 system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }
#chat-log { width: 100%; height: 24rem; box-sizing: border-box; font: 14px/1.4 ui-monospace, monospace; }
.row { display: flex; gap: .5rem; margin-top: .5rem; }
.row input[type=text] { flex: 1; font-size: 1rem; padding: .4rem; }
#state { font-size: .9rem; padding: .1rem .5rem; border-radius: 1rem; background: #eee; }
#state.open { background: #d4f5d4; } #state.closed { background: #f8d7d7; }
#members { list-style: none; display: flex; flex-wrap: wrap; gap: .3rem; padding: 0; margin: 0 0 .5rem; font-size: .9rem; }
#members li { padding: .1rem .5rem; border-radius: 1rem; background: #e4ecfb; }
)css";

}  // namespace

std::string HtmlEscape(const std::string& text) {
  return absl::StrReplaceAll(
      text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}, {"'", "&#39;"}});
}

std::string ScriptStringLiteral(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '<':
        out += "\\u003c";
        break;
      case '>':
        out += "\\u003e";
        break;
      case '&':
        out += "\\u0026";
        break;
      case '\'':
        out += "\\u0027";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  // U+2028 and U+2029 end a line inside older JS string literals.
  out = absl::StrReplaceAll(out, {{"\xE2\x80\xA8", "\\u2028"}, {"\xE2\x80\xA9", "\\u2029"}});
  out += "\"";
  return out;
}

std::optional<Page> ChatPages(const std::string& path) {
  if (path == "/") return Page{.status = 302, .body = "", .location = "/chat/"};
  if (path == "/chat/") return Page{.body = LobbyPage()};
  if (absl::StartsWith(path, "/chat/") && absl::EndsWith(path, "/") && path.size() > 7 &&
      path.find('/', 6) == path.size() - 1) {
    return Page{.body = RoomPage(path.substr(6, path.size() - 7))};
  }
  return std::nullopt;
}

std::string LobbyPage() {
  return absl::StrCat(R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat Rooms</title>
<style>)html",
                      kStyle, R"html(</style>
</head>
<body>
<h1>Chat rooms</h1>
<p>What chat room would you like to enter?</p>
<div class="row">
  <input id="room-name-input" type="text" autofocus placeholder="lobby" aria-label="Room name">
  <input id="room-name-submit" type="button" value="Enter">
</div>
<p id="room-hint" hidden>Room names are letters, digits and underscores.</p>
<p class="row"><label>Your name (optional) <input id="display-name-input" type="text"
  maxlength="64" aria-label="Your name"></label></p>
<script>
const input = document.querySelector("#room-name-input");
const hint = document.querySelector("#room-hint");
input.addEventListener("keyup", (e) => {
  if (e.key === "Enter") document.querySelector("#room-name-submit").click();
});
// A display name asks the edge's dev-mode issuer (if it has one) for a
// token; otherwise the page's own ?token= (README "Identity") goes along.
async function tokenQuery() {
  const display = document.querySelector("#display-name-input").value.trim();
  if (!display) return window.location.search;
  const r = await fetch("/auth/token", {method: "POST", body: JSON.stringify({name: display})});
  if (!r.ok) return window.location.search;
  return "?token=" + encodeURIComponent((await r.json()).token);
}
document.querySelector("#room-name-submit").addEventListener("click", async () => {
  const name = input.value.trim();
  if (!/^\w+$/.test(name)) { hint.hidden = false; return; }
  window.location.href = "/chat/" + encodeURIComponent(name) + "/" + (await tokenQuery());
});
</script>
</body>
</html>
)html");
}

std::string RoomPage(const std::string& room_name) {
  return absl::StrCat(R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat: )html",
                      HtmlEscape(room_name), R"html(</title>
<style>)html",
                      kStyle, R"html(</style>
</head>
<body>
<h1>Room <span id="room-title">)html",
                      HtmlEscape(room_name), R"html(</span>
  <span id="state" role="status">connecting</span></h1>
<ul id="members" aria-label="People in the room"></ul>
<textarea id="chat-log" readonly aria-label="Chat log"></textarea>
<div class="row">
  <input id="chat-message-input" type="text" autofocus aria-label="Message">
  <input id="chat-message-submit" type="button" value="Send">
</div>
<p><a href="/chat/">Other rooms</a></p>
<script>
const roomName = )html",
                      ScriptStringLiteral(room_name), R"html(;
const log = document.querySelector("#chat-log");
const input = document.querySelector("#chat-message-input");
const state = document.querySelector("#state");
const members = document.querySelector("#members");
const scheme = window.location.protocol === "https:" ? "wss" : "ws";
// A token in the page's URL (?token=...) names the user to the edge.
const token = new URLSearchParams(window.location.search).get("token");
const base = `${scheme}://${window.location.host}/ws/chat/${encodeURIComponent(roomName)}/`;
let socket = null;
let attempt = 0;
// The room's history position (groupsvc's offset and epoch) of the last message
// shown, or of the last joined/recovered frame: a reconnect asks for what came
// after it (?since=<offset>&epoch=<epoch>). null: none known (a first connect,
// or no groupsvc behind the edge), so no since.
let lastOffset = null;
let lastEpoch = null;
// A reconnect's lines, held back until its "recovered" frame says what they
// are, so that the log reads in order: the missed messages, then
// "reconnected: N missed messages recovered"; or, when they could not be
// recovered, "could not recover: showing the latest", then the latest ones.
// Printed anyway 2 s after the socket opens (an edge that sends no such
// frame), or when it closes. null: lines go straight to the log.
let held = null;
let heldTimer = null;
// Who is in the room: user id -> name, from presence frames.
const people = new Map();

function socketUrl() {
  const query = [];
  if (token) query.push(`token=${encodeURIComponent(token)}`);
  if (lastEpoch) query.push(`since=${lastOffset}&epoch=${encodeURIComponent(lastEpoch)}`);
  return base + (query.length ? "?" + query.join("&") : "");
}
function show(text) {
  log.value += text + "\n";
  log.scrollTop = log.scrollHeight;
}
function print(text) {
  if (held) held.push(text); else show(text);
}
// The held lines, with a line before or after them (either may be null).
function release(before, after) {
  clearTimeout(heldTimer);
  const lines = held || [];
  held = null;
  if (before) show(before);
  lines.forEach(show);
  if (after) show(after);
}
function setState(name, text) {
  state.className = name;
  state.textContent = text;
}
function hasPosition(data) {
  return Number.isInteger(data.offset) && typeof data.epoch === "string" && data.epoch !== "";
}
// A message frame's position: false if it was shown already (a replay that
// overlaps what this page saw), else it becomes the last seen.
function isNew(data) {
  if (!hasPosition(data)) return true;
  if (data.epoch === lastEpoch && data.offset <= lastOffset) return false;
  lastEpoch = data.epoch;
  lastOffset = data.offset;
  return true;
}
// A joined/recovered frame's position: the room's latest (offset 0 is valid:
// nothing yet under that epoch). "epoch": "" is a room without history.
function markPosition(data) {
  if (hasPosition(data)) {
    if (data.epoch !== lastEpoch || data.offset > lastOffset) {
      lastEpoch = data.epoch;
      lastOffset = data.offset;
    }
  } else if (data.type === "recovered" && data.epoch === "") {
    lastEpoch = lastOffset = null;
  }
}
function person(p) {
  if (!p || typeof p.id !== "string") return null;
  return [p.id, typeof p.name === "string" ? p.name : p.id];
}
// Presence is a set keyed by user id: members replaces it, joined adds (once), left removes.
function presence(data) {
  if (Array.isArray(data.members)) {
    people.clear();
    for (const m of data.members) {
      const p = person(m);
      if (p) people.set(p[0], p[1]);
    }
  } else if (data.joined) {
    const p = person(data.joined);
    if (!p || people.has(p[0])) return;
    people.set(p[0], p[1]);
  } else if (data.left) {
    const p = person(data.left);
    if (!p || !people.delete(p[0])) return;
  } else {
    return;
  }
  const sorted = [...people].sort(([ia, a], [ib, b]) => a.localeCompare(b) || ia.localeCompare(ib));
  members.replaceChildren(...sorted.map(([id, name]) => {
    const li = document.createElement("li");
    li.dataset.userId = id;
    li.textContent = name;  // Text: a name with markup stays text.
    return li;
  }));
}
function connect() {
  setState("connecting", "connecting");
  const resuming = lastEpoch !== null;
  // chat.v2: each message with its author and time (the tutorial's protocol otherwise).
  const ws = new WebSocket(socketUrl(), ["chat.v2"]);
  socket = ws;
  ws.onopen = () => {
    attempt = 0;
    setState("open", "connected");
    if (resuming) {
      held = [];
      heldTimer = setTimeout(() => release(null, null), 2000);
    }
  };
  ws.onmessage = (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch { return; }
    if (data.type === "message" && typeof data.message === "string") {
      if (!isNew(data)) return;
      // Text into a textarea: a name or message with markup stays text.
      const who = data.user && typeof data.user.name === "string" ? data.user.name : "anonymous";
      const when = typeof data.ts === "string" ? data.ts.slice(11, 16) : "";
      print(`${when} ${who}: ${data.message}`);
    } else if (data.type === "presence") {
      presence(data);
    } else if (data.type === "joined") {
      // After the latest messages (a first connect shows them as they come).
      markPosition(data);
      release(null, null);
    } else if (data.type === "recovered") {
      markPosition(data);
      if (data.recovered === true) {
        const missed = Number.isInteger(data.missed) ? data.missed : (held || []).length;
        release(null, `reconnected: ${missed} missed messages recovered`);
      } else {
        release("could not recover: showing the latest", null);
      }
    } else if (typeof data.message === "string") {
      print(data.message);
    } else if (data.error === "disconnected") {
      show(`[disconnected: ${data.detail}]`);
    } else if (data.error) {
      show(`[not sent: ${data.detail}]`);
    }
  };
  ws.onclose = (e) => {
    release(null, null);  // What arrived was seen: the next since is after it.
    if (e.code === 4001) {  // The token expired: retrying with it would not help.
      setState("closed", "signed out: the token expired; open the page with a new one");
      return;
    }
    if (e.code >= 4000) {  // The server decided (an operator): retrying would undo it.
      setState("closed", `closed by the server (${e.code}): ${e.reason || "no reason given"}`);
      return;
    }
    // Capped exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... 30 s.
    const delay = Math.random() * Math.min(30000, 500 * 2 ** attempt++);
    setState("closed", `disconnected (${e.code}), retrying in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(connect, delay);
  };
}
function send() {
  if (!input.value) return;
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    show("[not sent: not connected]");
    return;
  }
  socket.send(JSON.stringify({ message: input.value }));
  input.value = "";
}
input.addEventListener("keyup", (e) => { if (e.key === "Enter") send(); });
document.querySelector("#chat-message-submit").addEventListener("click", send);
connect();
</script>
</body>
</html>
)html");
}

}  // namespace edge
