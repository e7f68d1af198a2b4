// Browser tests: Debian's headless Chromium, driven by playwright-core, against
// the real groupsvc and two real edges on loopback ports.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { connect, createServer } from "node:net";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startLogged, stopAll } from "../support/js/process.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const build = process.env.CHAT_BUILD_DIR ?? path.resolve(here, "../../build");
const artifacts = process.env.CHAT_ARTIFACTS_DIR ?? path.resolve(here, "../../artifacts");
// The Python that has channels_groupsvc pip-installed (python/CMakeLists.txt).
const venvPython = `${build}/venv/bin/python`;
let browser;
let groupsvcPort;
let edgeA;
let edgeB;

async function waitReady(port) {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`edge on ${port} never became ready`);
}

async function openRoom(context, port, room, token) {
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${port}/chat/${room}/` + (token ? `?token=${token}` : ""));
  await page.waitForFunction(() => document.querySelector("#state").textContent === "connected");
  return page;
}

async function say(page, text) {
  await page.fill("#chat-message-input", text);
  await page.press("#chat-message-input", "Enter");
}

async function logContains(page, text) {
  await page.waitForFunction(
    (t) => document.querySelector("#chat-log").value.includes(t), text, { timeout: 10000 });
}

// The page's member list (#members) shows exactly these [id, name] pairs, in any order.
async function membersAre(page, expected) {
  const want = JSON.stringify([...expected].sort());
  try {
    await page.waitForFunction((w) => JSON.stringify([...document.querySelectorAll("#members li")]
        .map((li) => [li.dataset.userId, li.textContent]).sort()) === w, want, { timeout: 10000 });
  } catch (e) {
    const shown = await page.evaluate(() => [...document.querySelectorAll("#members li")]
        .map((li) => [li.dataset.userId, li.textContent]));
    throw new Error(`#members shows ${JSON.stringify(shown)}, not ${want}: ${e.message}`);
  }
}

// A signing secret in a folder of its own (the edges' --jwt_secret_file), and
// tokens minted with it by the edge's own tool; remove() deletes the folder.
function signingSecret(name) {
  const dir = mkdtempSync(path.join(tmpdir(), `chat-${name}-`));
  const secret = path.join(dir, "secret");
  writeFileSync(secret, `${name}-secret-0123456789abcdef0123456789\n`);
  const mint = (who, ttl) => execFileSync(`${build}/edge/edge`, [`--jwt_secret_file=${secret}`,
    `--mint_token=${who}`, ...(ttl ? [`--mint_ttl=${ttl}`] : [])], { encoding: "utf8" }).trim();
  return { secret, mint, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// A TCP proxy to 127.0.0.1:port that the test can cut: cut() drops every
// connection through it and refuses new ones until restore(), while the edge
// behind it (and its link to groupsvc) stays up.
function cuttableProxy(port) {
  const open = new Set();
  let cut = false;
  const server = createServer((client) => {
    if (cut) { client.destroy(); return; }
    const upstream = connect(port, "127.0.0.1");
    const pair = [client, upstream];
    pair.forEach((s) => open.add(s));
    const drop = () => pair.forEach((s) => { s.destroy(); open.delete(s); });
    for (const s of pair) { s.on("error", drop); s.on("close", drop); }
    client.pipe(upstream).pipe(client);
  });
  const dropAll = () => { for (const s of [...open]) s.destroy(); open.clear(); };
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    port: server.address().port,
    cut() { cut = true; dropAll(); },
    restore() { cut = false; },
    close() { cut = true; dropAll(); server.close(); },
  })));
}

before(async () => {
  groupsvcPort = (await startLogged(`${build}/groupsvc/groupsvc`,
                                    ["--listen=127.0.0.1:0", "--metrics_listen=", "--warmup=0s"])).port;
  const layer = `--groupsvc=127.0.0.1:${groupsvcPort}`;
  edgeA = (await startLogged(`${build}/edge/edge`, ["--listen=127.0.0.1:0", "--metrics_listen=", layer, "--edge_id=browser-a"])).port;
  edgeB = (await startLogged(`${build}/edge/edge`, ["--listen=127.0.0.1:0", "--metrics_listen=", layer, "--edge_id=browser-b", "--threads=2"])).port;
  await waitReady(edgeA);
  await waitReady(edgeB);
  browser = await launch();
});

function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           ...extraArgs],
  });
}

after(async () => {
  await browser?.close();
  stopAll();
});

test("two tabs in one room see each other's messages (the tutorial's final check)", async () => {
  const context = await browser.newContext();
  const one = await openRoom(context, edgeA, "lobby");
  const two = await openRoom(context, edgeA, "lobby");
  await say(one, "hello from tab one");
  await logContains(two, "hello from tab one");
  await logContains(one, "hello from tab one");
  await say(two, "and hello back");
  await logContains(one, "and hello back");
  mkdirSync(artifacts, { recursive: true });
  await one.screenshot({ path: path.join(artifacts, "room.png") });
  await context.close();
});

test("two pages on two different edges chat through groupsvc", async () => {
  const context = await browser.newContext();
  const onA = await openRoom(context, edgeA, "kitchen");
  const onB = await openRoom(context, edgeB, "kitchen");
  const elsewhere = await openRoom(context, edgeB, "garden");
  await say(onA, "from edge a");
  await logContains(onB, "from edge a");
  await say(onB, "from edge b");
  await logContains(onA, "from edge b");
  assert.equal(await elsewhere.inputValue("#chat-log"), "");
  await context.close();
});

test("the lobby leads to the room page", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${edgeA}/`);
  assert.equal(new URL(page.url()).pathname, "/chat/");
  await page.fill("#room-name-input", "terrace");
  await page.press("#room-name-input", "Enter");
  await page.waitForURL(`http://127.0.0.1:${edgeA}/chat/terrace/`);
  await page.waitForFunction(() => document.querySelector("#state").textContent === "connected");
  await context.close();
});

test("with --auth=required, the page's ?token= carries the user's identity to the WebSocket", async () => {
  const { secret, mint, remove } = signingSecret("auth");
  const port = (await startLogged(`${build}/edge/edge`, ["--listen=127.0.0.1:0", "--metrics_listen=",
    "--auth=required", `--jwt_secret_file=${secret}`, "--write_timeout=1s"])).port;
  const context = await browser.newContext();
  // Through the lobby: the token follows the room's page.
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${port}/chat/?token=${mint("ann:Ann", "1h")}`);
  await page.fill("#room-name-input", "signed");
  await page.press("#room-name-input", "Enter");
  await page.waitForURL(/\/chat\/signed\/\?token=/);
  await page.waitForFunction(() => document.querySelector("#state")?.textContent === "connected");
  await say(page, "hello with a token");
  // chat.v2: the author's name from the token, before the message.
  await logContains(page, "Ann: hello with a token");
  // A display name in the lobby: the edge's dev-mode issuer gives the page its token.
  const issuing = (await startLogged(`${build}/edge/edge`, ["--listen=127.0.0.1:0",
    "--metrics_listen=", "--auth=required", `--jwt_secret_file=${secret}`, "--dev_token_issuer"])).port;
  const named = await context.newPage();
  await named.goto(`http://127.0.0.1:${issuing}/chat/`);
  await named.fill("#display-name-input", "Zoë <img src=x onerror=alert(1)>");
  await named.fill("#room-name-input", "named");
  await named.press("#room-name-input", "Enter");
  await named.waitForURL(/\/chat\/named\/\?token=/);
  await named.waitForFunction(() => document.querySelector("#state")?.textContent === "connected");
  assert.match(new URL(named.url()).search, /^\?token=/);
  // A name with markup is shown as text and never runs.
  let ran = false;
  named.on("dialog", async (d) => { ran = true; await d.dismiss(); });
  await say(named, "hi from Zoë");
  await logContains(named, "Zoë <img src=x onerror=alert(1)>: hi from Zoë");
  assert.equal(await named.locator("img").count(), 0);
  assert.equal(ran, false);
  // Without one the upgrade is refused (401): the page never connects, and says why.
  const anonymous = await context.newPage();
  await anonymous.goto(`http://127.0.0.1:${port}/chat/signed/`);
  await anonymous.waitForFunction(() => document.querySelector("#state")?.textContent ===
    "refused (401): a token is required (?token=... or Authorization: Bearer)");
  // A token that expires while the page is open: closed with 4001, and the page says so.
  const brief = await context.newPage();
  await brief.goto(`http://127.0.0.1:${port}/chat/signed/?token=${mint("bo", "2s")}`);
  await brief.waitForFunction(() => document.querySelector("#state")?.textContent === "connected");
  await brief.waitForFunction(
    () => document.querySelector("#state")?.textContent.startsWith("signed out"), null, { timeout: 10000 });
  await context.close();
  remove();
});

test("the tutorial's own room.html, unchanged, chats through the edge", async () => {
  // Served by the test on the edge's origin, as Django would render it.
  // The seed's page, kept once: the example Django project serves it as is.
  const template = readFileSync(
    path.join(here, "../../examples/django_chat/chat/templates/chat/room.html"), "utf8");
  const html = template.replace("{{ room_name | escapejs }}", "tutorial");
  // A document the test fulfils has no local address, so Chromium's Local
  // Network Access checks would block its socket to 127.0.0.1.
  const own = await launch(["--disable-features=LocalNetworkAccessChecks"]);
  const context = await own.newContext();
  await context.route(`http://127.0.0.1:${edgeA}/tutorial/`, (route) =>
    route.fulfill({ contentType: "text/html", body: html }));
  const tutorial = await context.newPage();
  await tutorial.goto(`http://127.0.0.1:${edgeA}/tutorial/`);
  // The page's top-level `let chatSocket` is reachable from here.
  await tutorial.waitForFunction("chatSocket.readyState === WebSocket.OPEN");
  const ours = await openRoom(context, edgeB, "tutorial");
  await say(ours, "hello tutorial");
  await logContains(tutorial, "hello tutorial");
  await tutorial.fill("#chat-message-input", "hello from the tutorial page");
  await tutorial.press("#chat-message-input", "Enter");
  await logContains(ours, "hello from the tutorial page");
  await own.close();
});

test("the tutorial's own room.html prints a readable line for a message groupsvc did not take", async () => {
  // A groupsvc and an edge of their own: this test freezes, kills and restarts groupsvc.
  const svc = await startLogged(`${build}/groupsvc/groupsvc`,
                                ["--listen=127.0.0.1:0", "--metrics_listen=", "--warmup=0s"]);
  const edge = await startLogged(`${build}/edge/edge`, ["--listen=127.0.0.1:0", "--metrics_listen=",
    `--groupsvc=127.0.0.1:${svc.port}`, "--edge_id=browser-readable"]);
  await waitReady(edge.port);
  const template = readFileSync(
    path.join(here, "../../examples/django_chat/chat/templates/chat/room.html"), "utf8");
  const own = await launch(["--disable-features=LocalNetworkAccessChecks"]);
  const context = await own.newContext();
  await context.route(`http://127.0.0.1:${edge.port}/tutorial/`, (route) => route.fulfill(
    { contentType: "text/html", body: template.replace("{{ room_name | escapejs }}", "faults") }));
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${edge.port}/tutorial/`);
  await page.waitForFunction("chatSocket.readyState === WebSocket.OPEN");
  const type = async (text) => {
    await page.fill("#chat-message-input", text);
    await page.press("#chat-message-input", "Enter");
  };
  // The edge's own page in the same room says the same of its own messages.
  const ours = await openRoom(context, edge.port, "faults");
  await type("before");
  await logContains(page, "before");
  await logContains(ours, "before");
  // Frozen, then killed: the message went out but was never confirmed.
  svc.child.kill("SIGSTOP");
  await type("while frozen");
  await new Promise((r) => setTimeout(r, 500));
  svc.child.kill("SIGKILL");
  await logContains(page, '[maybe not delivered] "while frozen": ');
  // Down: refused at once.
  await type("while down");
  await logContains(page, '[not delivered] "while down": ');
  await say(ours, "ours while down");
  await logContains(ours, '[not delivered "ours while down": ');
  // Back on the same port: the edge reattaches and the room works again.
  const again = await startLogged(`${build}/groupsvc/groupsvc`,
                                  [`--listen=127.0.0.1:${svc.port}`, "--metrics_listen=", "--warmup=0s"]);
  await waitReady(edge.port);
  await type("just after restart");
  await logContains(page, "just after restart");
  // The edge stops: the page, which shows no close, prints why its socket closed.
  edge.child.kill("SIGTERM");
  await logContains(page, "[disconnected] the server is restarting: reload the page to reconnect");
  const log = await page.evaluate(() => document.querySelector("#chat-log").value);
  assert.ok(!log.includes("undefined"), log);
  await own.close();
  again.child.kill("SIGTERM");
});

test("the room page says why the edge refused its upgrade, which the browser hides", async () => {
  const { secret, mint, remove } = signingSecret("refused");
  const ann = mint("ann:Ann");
  const edge = await startLogged(`${build}/edge/edge`, ["--listen=127.0.0.1:0", "--metrics_listen=",
    `--jwt_secret_file=${secret}`, "--max_connections_per_user=1"]);
  const context = await browser.newContext();
  try {
    await openRoom(context, edge.port, "capped", ann);
    // A second tab of Ann's is over her cap: a 429 the page reads back and retries.
    const second = await context.newPage();
    await second.goto(`http://127.0.0.1:${edge.port}/chat/capped/?token=${ann}`);
    // (Checked in one look: the retry may begin at once and say "connecting".)
    await second.waitForFunction(() => {
      const state = document.querySelector("#state").textContent;
      return state.startsWith('refused (429): user "ann" already has 1 connection') &&
             state.includes("retrying in");
    }, null, { timeout: 10000 });
    // A token the edge does not take: 401, and no retry.
    const forged = await context.newPage();
    await forged.goto(`http://127.0.0.1:${edge.port}/chat/capped/?token=${ann.slice(0, -2)}xx`);
    await forged.waitForFunction(() => document.querySelector("#state").textContent.startsWith(
      "refused (401): "), null, { timeout: 10000 });
    assert.doesNotMatch(await forged.textContent("#state"), /retrying/);
  } finally {
    await context.close();
    edge.child.kill("SIGTERM");
    remove();
  }
});

test("the room page shows a lost connection and reconnects by itself", async () => {
  // An edge of its own, so that stopping it disturbs no other test.
  const first = await startLogged(`${build}/edge/edge`, ["--listen=127.0.0.1:0", "--metrics_listen=", "--grace=2s"]);
  const context = await browser.newContext();
  const page = await openRoom(context, first.port, "phoenix");
  // Every state the page shows: "disconnected (1001: <why>), retrying in 0.3 s" may
  // last only until the first retry, too briefly for polling to catch it.
  await page.evaluate(() => {
    const state = document.querySelector("#state");
    window.shownStates = [];
    new MutationObserver(() => window.shownStates.push(state.textContent))
        .observe(state, { childList: true, characterData: true, subtree: true });
  });
  const stopped = new Promise((r) => first.child.on("exit", r));
  first.child.kill("SIGTERM");
  await stopped;
  await page.waitForFunction(() => window.shownStates.some((s) => s.startsWith(
      "disconnected (1001: the server is restarting: reload the page to reconnect), retrying")));
  // Back on the same port: the page's backoff finds it without a reload.
  const again = await startLogged(`${build}/edge/edge`, [`--listen=127.0.0.1:${first.port}`, "--metrics_listen="]);
  await page.waitForFunction(() => document.querySelector("#state").textContent === "connected",
                             null, { timeout: 30000 });
  const other = await openRoom(context, again.port, "phoenix");
  await say(other, "welcome back");
  await logContains(page, "welcome back");
  await context.close();
});

test("two named users chat and see each other in the member list; the list updates when one leaves", async () => {
  const { secret, mint, remove } = signingSecret("presence");
  // A groupsvc of its own, announcing a leave 500 ms after the user's last connection went.
  const presenceSvc = await startLogged(`${build}/groupsvc/groupsvc`, ["--listen=127.0.0.1:0",
    "--metrics_listen=", "--warmup=0s", "--presence_debounce=500ms"]);
  const edgeArgs = (id) => ["--listen=127.0.0.1:0", "--metrics_listen=",
    `--groupsvc=127.0.0.1:${presenceSvc.port}`, `--edge_id=${id}`, `--jwt_secret_file=${secret}`];
  const one = await startLogged(`${build}/edge/edge`, edgeArgs("browser-presence-a"));
  const two = await startLogged(`${build}/edge/edge`, [...edgeArgs("browser-presence-b"), "--threads=2"]);
  await waitReady(one.port);
  await waitReady(two.port);
  const context = await browser.newContext();
  let ran = false;
  context.on("dialog", async (d) => { ran = true; await d.dismiss(); });
  const boName = "Bo <img src=x onerror=alert(1)>";
  const ann = await openRoom(context, one.port, "people", mint("ann:Ann"));
  const bo = await openRoom(context, two.port, "people", mint(`bo:${boName}`));
  // Each page lists both, by name, as text.
  await membersAre(ann, [["ann", "Ann"], ["bo", boName]]);
  await membersAre(bo, [["ann", "Ann"], ["bo", boName]]);
  await say(ann, "hello Bo");
  await logContains(bo, "Ann: hello Bo");
  await say(bo, "hello Ann");
  await logContains(ann, `${boName}: hello Ann`);
  for (const page of [ann, bo]) assert.equal(await page.locator("img").count(), 0);
  assert.equal(ran, false);
  // Bo's tab goes: Ann's list drops Bo (after the debounce).
  await bo.close();
  await membersAre(ann, [["ann", "Ann"]]);
  await context.close();
  for (const p of [one, two, presenceSvc]) p.child.kill("SIGTERM");
  remove();
});

test("an operator's RemoveFromGroup shows its reason on the room page, which does not reconnect", async () => {
  const { secret, mint, remove } = signingSecret("operator");
  const token = mint("ann:Ann");
  const svc = await startLogged(`${build}/groupsvc/groupsvc`, ["--listen=127.0.0.1:0",
    "--metrics_listen=", "--warmup=0s"]);
  const edge = await startLogged(`${build}/edge/edge`, ["--listen=127.0.0.1:0", "--metrics_listen=",
    `--groupsvc=127.0.0.1:${svc.port}`, "--edge_id=browser-operator", `--jwt_secret_file=${secret}`]);
  await waitReady(edge.port);
  const context = await browser.newContext();
  const ann = await openRoom(context, edge.port, "people", token);
  // What an operator's script does (grpcurl's call, from Python's gRPC).
  const script = [
    "import grpc, sys",
    "from groupsvc.v1 import layer_pb2 as pb, layer_pb2_grpc as rpc",
    "stub = rpc.ChannelLayerStub(grpc.insecure_channel(sys.argv[1]))",
    "print(stub.RemoveFromGroup(pb.RemoveFromGroupRequest(user_id='ann', group='chat_people',",
    "    reason='off topic'), timeout=10).edges)",
  ].join("\n");
  const told = execFileSync(venvPython, ["-c", script, `127.0.0.1:${svc.port}`],
    { encoding: "utf8" }).trim();
  assert.equal(told, "1");
  await logContains(ann, "[disconnected: off topic]");
  await ann.waitForFunction(() => document.querySelector("#state").textContent ===
    "closed by the server (4011): off topic");
  // A 4000-range close is the server's decision: the page does not come back by itself.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await ann.evaluate(() => document.querySelector("#state").textContent),
    "closed by the server (4011): off topic");
  await context.close();
  for (const p of [edge, svc]) p.child.kill("SIGTERM");
  remove();
});

test("a reconnect shows the messages sent while the page was away, recovered", async () => {
  // Page A reaches edge A through a proxy the test cuts: A loses its connection
  // while edge A, groupsvc and page B on edge B stay up.
  const proxy = await cuttableProxy(edgeA);
  try {
    const context = await browser.newContext();
    const a = await context.newPage();
    const urls = [];
    a.on("websocket", (ws) => urls.push(ws.url()));
    await a.goto(`http://127.0.0.1:${proxy.port}/chat/recovery/`);
    await a.waitForFunction(() => document.querySelector("#state").textContent === "connected");
    const b = await openRoom(context, edgeB, "recovery");
    // A message A sees: its offset and epoch are where A's reconnect resumes.
    await say(b, "before the cut");
    await logContains(a, "before the cut");
    proxy.cut();
    await a.waitForFunction(() => document.querySelector("#state").className !== "open");
    for (const text of ["missed one", "missed two", "missed three"]) await say(b, text);
    await logContains(b, "missed three");  // All three are in the room's history.
    proxy.restore();
    await a.waitForFunction(
      () => document.querySelector("#chat-log").value.includes("reconnected: 3 missed messages recovered"),
      null, { timeout: 30000 });
    // Each missed message once, in order, then the notice.
    const lines = () => a.inputValue("#chat-log").then((log) =>
      log.split("\n").filter(Boolean).map((line) => line.replace(/^\d\d:\d\d /, "")));
    assert.deepEqual(await lines(), [
      "anonymous: before the cut",
      "anonymous: missed one",
      "anonymous: missed two",
      "anonymous: missed three",
      "reconnected: 3 missed messages recovered",
    ]);
    // The first connect asked for no history; the reconnect asked for what came after "before the cut".
    assert.doesNotMatch(urls[0], /since=/);
    assert.match(urls.at(-1), /\/ws\/chat\/recovery\/\?attempt=[0-9a-f]{32}&since=\d+&epoch=[^&]+$/);
    // And the room goes on live.
    await say(b, "after the return");
    await logContains(a, "anonymous: after the return");
    assert.equal((await lines()).at(-1), "anonymous: after the return");
    await context.close();
  } finally {
    proxy.close();
  }
});

test("a room name with markup is shown as text and never runs", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const room = encodeURIComponent(`"><img src=x onerror="window.__owned=1">`);
  await page.goto(`http://127.0.0.1:${edgeA}/chat/${room}/`);
  assert.equal(await page.textContent("#room-title"), `"><img src=x onerror="window.__owned=1">`);
  assert.equal(await page.evaluate(() => window.__owned), undefined);
  assert.equal(await page.locator("img").count(), 0);
  await context.close();
});

// The example Django project on daphne, with channels_groupsvc on the suite's groupsvc.
async function startDjango(extraEnv = {}) {
  const example = path.resolve(here, "../../examples/django_chat");
  const env = {
    ...process.env,
    DJANGO_SETTINGS_MODULE: "chatsite.settings",
    CHAT_GROUPSVC: `127.0.0.1:${groupsvcPort}`,
    CHAT_DJANGO_DB: path.join(mkdtempSync(path.join(tmpdir(), "chat-django-")), "db.sqlite3"),
    PYTHONPATH: example,
    ...extraEnv,
  };
  execFileSync(venvPython, ["manage.py", "migrate", "--noinput", "-v", "0"], { cwd: example, env });
  const port = await freePort();
  const daphne = spawn(venvPython, ["-m", "daphne", "-b", "127.0.0.1", "-p", String(port),
                                    "chatsite.asgi:application"],
                       { cwd: example, env, stdio: ["ignore", "ignore", "pipe"] });
  await waitListening(port);
  const manage = (...args) => execFileSync(venvPython, ["manage.py", ...args], { cwd: example, env });
  return { port, daphne, manage };
}

test("a user logged in to Django chats on the edge's page under their Django name", async () => {
  const { secret, mint, remove } = signingSecret("django-token");
  const edge = await startLogged(`${build}/edge/edge`, ["--listen=127.0.0.1:0", "--metrics_listen=",
    `--groupsvc=127.0.0.1:${groupsvcPort}`, "--edge_id=browser-django-token",
    `--jwt_secret_file=${secret}`, "--auth=required"]);
  await waitReady(edge.port);
  const { port, daphne, manage } = await startDjango({
    CHAT_EDGE_URL: `http://127.0.0.1:${edge.port}`, CHAT_EDGE_SECRET_FILE: secret });
  try {
    manage("shell", "-c", "from django.contrib.auth.models import User\n" +
      "User.objects.create_user('ann', password='pw-0123456789', first_name='Ann', last_name='Lee')");
    const context = await browser.newContext();
    const ann = await context.newPage();
    // From the tutorial's index: Django's login, then its view sends her to the
    // edge's room page with a token.
    await ann.goto(`http://127.0.0.1:${port}/chat/`);
    await ann.fill("#room-name-input", "django_users");
    await ann.click("#room-edge-submit");
    await ann.fill("#id_username", "ann");
    await ann.fill("#id_password", "pw-0123456789");
    await ann.click("#sign-in");
    await ann.waitForURL(new RegExp(`^http://127\\.0\\.0\\.1:${edge.port}/chat/django_users/\\?token=`));
    await ann.waitForFunction(() => document.querySelector("#state").textContent === "connected");
    // Another Django user's token, straight from the helper, for a second page.
    const bo = execFileSync(venvPython, ["-c", "import sys\n" +
      "from channels_groupsvc.tokens import edge_token\n" +
      "print(edge_token({'id': 'bo', 'name': 'Bo'}, secret_file=sys.argv[1]))", secret],
      { encoding: "utf8" }).trim();
    const other = await openRoom(context, edge.port, "django_users", bo);
    await membersAre(other, [[await manage("shell", "-c",
      "from django.contrib.auth.models import User; print(User.objects.get(username='ann').pk)")
      .toString().trim(), "Ann Lee"], ["bo", "Bo"]]);
    await say(ann, "hello from a Django account");
    await logContains(other, "Ann Lee: hello from a Django account");
    await context.close();
  } finally {
    daphne.kill("SIGTERM");
    edge.child.kill("SIGTERM");
    remove();
  }
});

test("the Django app's live room lists who is there on both servers and recovers what a reconnect missed", async () => {
  const { secret, mint, remove } = signingSecret("django-live");
  const edge = await startLogged(`${build}/edge/edge`, ["--listen=127.0.0.1:0", "--metrics_listen=",
    `--groupsvc=127.0.0.1:${groupsvcPort}`, "--edge_id=browser-django-live",
    `--jwt_secret_file=${secret}`]);
  await waitReady(edge.port);
  const { port, daphne, manage } = await startDjango();
  try {
    manage("shell", "-c", "from django.contrib.auth.models import User\n" +
      "User.objects.create_user('ann', password='pw-0123456789', first_name='Ann', last_name='Lee')");
    const annId = manage("shell", "-c", "from django.contrib.auth.models import User; " +
      "print(User.objects.get(username='ann').pk)").toString().trim();
    const context = await browser.newContext();
    const ann = await context.newPage();
    await ann.goto(`http://127.0.0.1:${port}/accounts/login/?next=/chat/liveroom/live/`);
    await ann.fill("#id_username", "ann");
    await ann.fill("#id_password", "pw-0123456789");
    await ann.click("#sign-in");
    await ann.waitForFunction(() => document.querySelector("#state").textContent === "connected");
    const bo = await openRoom(context, edge.port, "liveroom", mint("bo:Bo"));
    // Both pages list both users: Django's and the edge's presence are one.
    await membersAre(ann, [[annId, "Ann Lee"], ["bo", "Bo"]]);
    await membersAre(bo, [[annId, "Ann Lee"], ["bo", "Bo"]]);
    await say(bo, "before");
    await logContains(ann, "Bo: before");
    // Ann's socket drops; what Bo says meanwhile comes back with her reconnect, once.
    await ann.evaluate(() => socket.close());
    await say(bo, "while away 1");
    await say(bo, "while away 2");
    await logContains(ann, "reconnected: 2 missed messages recovered");
    await logContains(ann, "Bo: while away 2");
    const text = await ann.evaluate(() => document.querySelector("#chat-log").value);
    assert.equal(text.split("Bo: while away 1").length, 2, text);
    await ann.fill("#chat-message-input", "back");
    await ann.press("#chat-message-input", "Enter");
    await logContains(bo, "Ann Lee: back");
    await context.close();
  } finally {
    daphne.kill("SIGTERM");
    edge.child.kill("SIGTERM");
    remove();
  }
});

test("a Django Channels app on channels_groupsvc shares a room with the edge, and a Django shell's group_send reaches both pages", async () => {
  const { port, daphne, manage } = await startDjango();
  try {
    const context = await browser.newContext();
    // The tutorial's room.html as Django renders it, on daphne; the edge's page beside it.
    const django = await context.newPage();
    await django.goto(`http://127.0.0.1:${port}/chat/mixed/`);
    await django.waitForFunction("chatSocket.readyState === WebSocket.OPEN");
    const edge = await openRoom(context, edgeA, "mixed");
    await django.fill("#chat-message-input", "hello from django");
    await django.press("#chat-message-input", "Enter");
    await logContains(edge, "hello from django");
    await logContains(django, "hello from django");
    await say(edge, "hello from the edge");
    await logContains(django, "hello from the edge");
    manage("shell", "-c",
      "from asgiref.sync import async_to_sync\n" +
      "from channels.layers import get_channel_layer\n" +
      "async_to_sync(get_channel_layer().group_send)('chat_mixed', " +
      "{'type': 'chat.message', 'message': 'from a Django shell'})\n");
    await logContains(edge, "from a Django shell");
    await logContains(django, "from a Django shell");
  } finally {
    daphne.kill("SIGTERM");
  }
});

function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitListening(port) {
  for (let i = 0; i < 400; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/chat/`);
      return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`daphne on ${port} never listened`);
}
