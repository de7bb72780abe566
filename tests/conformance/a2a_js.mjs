// A second A2A client: the official JavaScript SDK (@a2a-js/sdk, pinned in package.json) against
// the real quietbox-a2a binary, beside tests/interop/a2a_interop.py (the Python a2a-sdk). Run by
// a2a.sh on Node 22 from target/conformance; see README.md.
//
// Each check is named (the names of a2a-known-failures.txt) and tagged with its issue-21 item.
// Two quietbox-a2a processes: one on data/sample (300 messages), one on a mailbox of the sample
// repeated so that a scan runs long enough to be cancelled, resubscribed to, or returned
// immediately while it works. Everything stays on loopback: the only unsubscribe executed is a
// mailto one, which the local provider writes into DATA_DIR.
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { Role, TaskState } from "@a2a-js/sdk";
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from "@a2a-js/sdk/client";
import {
  PushNotificationNotSupportedError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
} from "@a2a-js/sdk/errors";
import { readKnownFailures, startQuietbox, stopQuietbox, verdict } from "./lib.mjs";

const KEY = "a2a-js-conformance-key-0123456789abcdef01";
const SLOW_COPIES = 40;
const CHECK_TIMEOUT_MS = 30_000;
const [binary, sample, known_path] = process.argv.slice(2);
if (!known_path) {
  console.error("usage: node a2a_js.mjs <quietbox-a2a> <data/sample> <known-failures>");
  process.exit(2);
}

// ---- helpers ---------------------------------------------------------------------------------

function fail(message) {
  throw new Error(message);
}
function ensure(cond, message) {
  if (!cond) fail(typeof message === "function" ? message() : message);
}
const stateName = (s) => TaskState[s] ?? String(s);
const authFetch = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set("X-API-Key", KEY);
  return fetch(input, { ...init, headers });
};

async function client(base) {
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl: authFetch })],
    }),
  );
  return factory.createFromUrl(base);
}

const textPart = (text) => ({ content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "" });
const dataPart = (value) => ({ content: { $case: "data", value }, metadata: undefined, filename: "", mediaType: "" });
function message(parts, extra = {}) {
  return {
    messageId: randomUUID(),
    contextId: "",
    taskId: "",
    role: Role.ROLE_USER,
    parts,
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
    ...extra,
  };
}
function send(msg, configuration = undefined) {
  return { tenant: "", message: msg, configuration, metadata: undefined };
}
const skill = (name, args = {}) => message([dataPart({ skill: name, args })]);

function taskOf(result) {
  // Client.sendMessage answers a Task or a Message (SendMessageResult).
  ensure(result && "status" in result && "id" in result, () => `expected a Task, got ${JSON.stringify(result).slice(0, 300)}`);
  return result;
}
function artifactData(task) {
  const part = task.artifacts?.[0]?.parts?.[0];
  ensure(part?.content?.$case === "data", () => `no data artifact in ${JSON.stringify(task).slice(0, 300)}`);
  return part.content.value;
}
function statusText(task) {
  return (task.status?.message?.parts ?? [])
    .map((p) => (p.content?.$case === "text" ? p.content.value : JSON.stringify(p.content?.value ?? "")))
    .join(" ");
}

/// Collects a stream's events as { kind, state?, taskId?, value }, with an overall timeout.
async function collect(stream, { onEvent, timeoutMs = 60_000 } = {}) {
  const events = [];
  const timer = setTimeout(() => stream.return?.(undefined), timeoutMs);
  try {
    for await (const event of stream) {
      const p = event.payload;
      const row = { kind: p?.$case, value: p?.value };
      if (p?.$case === "task") Object.assign(row, { state: p.value.status?.state, taskId: p.value.id });
      if (p?.$case === "statusUpdate") Object.assign(row, { state: p.value.status?.state, taskId: p.value.taskId });
      if (p?.$case === "artifactUpdate") row.taskId = p.value.taskId;
      events.push(row);
      if (onEvent) await onEvent(row, events);
    }
  } finally {
    clearTimeout(timer);
  }
  return events;
}
const states = (events) => events.filter((e) => e.state !== undefined).map((e) => stateName(e.state));

async function expectError(call, cls, code) {
  try {
    await call();
  } catch (err) {
    if (cls && err instanceof cls) return err;
    const got = `${err?.name ?? typeof err} (code ${err?.envelopeCode ?? "?"}): ${err?.message ?? err}`;
    if (!cls && err?.envelopeCode === code) return err;
    fail(`expected ${cls ? cls.name : "a JSON-RPC error"} (${code}), got ${got.slice(0, 300)}`);
  }
  fail(`expected ${cls ? cls.name : "a JSON-RPC error"} (${code}), the call succeeded`);
}

/// A raw JSON-RPC POST to the agent (what the SDK cannot send); answers { status, text, json }.
async function raw(base, body, headers = {}) {
  const res = await authFetch(base, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

/// GET with an explicit Host header (fetch cannot set one).
function getWithHost(url, host) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname, method: "GET", headers: { host, "x-api-key": KEY }, setHost: false },
      (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

// ---- the checks ------------------------------------------------------------------------------

const checks = [];
const check = (name, item, fn) => checks.push({ name, item, fn });
const ctx = { created: 0 };

check("card-resolution", "11", async ({ fast }) => {
  const card = await fast.client.getAgentCard();
  ensure(card.name === "quietbox", `card name ${card.name}`);
  ensure(card.capabilities?.streaming === true, "card does not declare streaming");
  const iface = card.supportedInterfaces?.[0];
  ensure(iface?.protocolBinding === "JSONRPC", `first interface ${JSON.stringify(iface)}`);
  const ids = new Set(card.skills.map((s) => s.id));
  for (const id of ["availability", "scan_inbox", "unsubscribe_candidates", "unsubscribe"]) ensure(ids.has(id), `skill ${id} missing`);
  ensure(card.securitySchemes?.api_key, "no api_key security scheme");
});

check("card-url-not-from-host-header", "10", async ({ fast }) => {
  const { status, body } = await getWithHost(`${fast.base}/.well-known/agent-card.json`, "evil.example:666");
  ensure(status === 200, `card status ${status}`);
  const url = JSON.parse(body).supportedInterfaces?.[0]?.url ?? "";
  ensure(!url.includes("evil.example"), `Host header reflected: interface url ${url}`);
  ensure(url.startsWith(fast.base), `interface url ${url}, expected the configured ${fast.base}/`);
});

check("card-401-challenge-declared-scheme", "10", async ({ fast }) => {
  const res = await fetch(fast.base, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  ensure(res.status === 401, `unauthenticated POST answered ${res.status}`);
  const challenge = res.headers.get("www-authenticate") ?? "";
  const card = await fast.client.getAgentCard();
  const declared = Object.values(card.securitySchemes ?? {}).map((s) => JSON.stringify(s).toLowerCase());
  const scheme = challenge.split(/\s/)[0].toLowerCase();
  ensure(scheme !== "", "no WWW-Authenticate challenge");
  ensure(
    declared.some((d) => d.includes(`"${scheme}"`) || (scheme === "apikey" && d.includes("apikeysecurityscheme"))),
    `challenge "${challenge}" names no scheme the card declares (${declared.join(", ")})`,
  );
});

check("send-message-blocking", "11", async ({ fast }) => {
  const task = taskOf(await fast.client.sendMessage(send(message([textPart("show unsubscribe candidates")]))));
  ctx.created++;
  ensure(task.status?.state === TaskState.TASK_STATE_COMPLETED, `state ${stateName(task.status?.state)}`);
  const data = artifactData(task);
  ensure(data.candidates?.length > 5, "fewer than 6 candidates");
  ensure(data.candidates[0].sender?.address === "deals@shop.example.com", `first candidate ${JSON.stringify(data.candidates[0]).slice(0, 200)}`);
  ctx.candidates = data.candidates;
});

check("send-message-streaming", "11", async ({ fast }) => {
  const events = await collect(fast.client.sendMessageStream(send(message([textPart("scan inbox")]))));
  ctx.created++;
  const s = states(events);
  ensure(s[0] === "TASK_STATE_WORKING" && s.at(-1) === "TASK_STATE_COMPLETED", `states ${s.join(" ")}`);
  const art = events.find((e) => e.kind === "artifactUpdate");
  ensure(art, "no artifact update");
  ensure(art.value.artifact.parts[0].content.value.total === 300, "artifact total is not 300");
  ctx.streamed = events[0].taskId;
});

check("get-task", "11", async ({ fast }) => {
  ensure(ctx.streamed, "needs send-message-streaming");
  const task = await fast.client.getTask({ tenant: "", id: ctx.streamed });
  ensure(task.id === ctx.streamed, `id ${task.id}`);
  ensure(task.status?.state === TaskState.TASK_STATE_COMPLETED, `state ${stateName(task.status?.state)}`);
  ensure(task.history.length > 0, "the task has no history (expected the user's message)");
});

check("get-task-history-length-0", "5", async ({ fast }) => {
  ensure(ctx.streamed, "needs send-message-streaming");
  const task = await fast.client.getTask({ tenant: "", id: ctx.streamed, historyLength: 0 });
  ensure(task.history.length === 0, `historyLength 0 returned ${task.history.length} history messages`);
});

check("get-task-unknown-TaskNotFoundError", "11", async ({ fast }) => {
  await expectError(() => fast.client.getTask({ tenant: "", id: randomUUID() }), TaskNotFoundError, -32001);
});

check("list-tasks-paging", "11", async ({ fast }) => {
  const total = ctx.created;
  const first = await fast.client.listTasks({ tenant: "", contextId: "", status: 0, pageSize: 1, pageToken: "", statusTimestampAfter: undefined });
  ensure(first.totalSize === total, `totalSize ${first.totalSize}, expected ${total}`);
  ensure(first.tasks.length === 1 && first.nextPageToken, `first page: ${first.tasks.length} tasks, token ${JSON.stringify(first.nextPageToken)}`);
  const rest = await fast.client.listTasks({ tenant: "", contextId: "", status: 0, pageSize: 100, pageToken: first.nextPageToken, statusTimestampAfter: undefined });
  ensure(rest.tasks.length === total - 1, `second page: ${rest.tasks.length} tasks, expected ${total - 1}`);
  ensure(!rest.nextPageToken, `last page has a next token ${rest.nextPageToken}`);
  const ids = new Set([...first.tasks, ...rest.tasks].map((t) => t.id));
  ensure(ids.size === total, "pages overlap");
});

check("list-tasks-artifacts-omitted-by-default", "5", async ({ fast }) => {
  const list = await fast.client.listTasks({ tenant: "", contextId: "", status: 0, pageSize: 100, pageToken: "", statusTimestampAfter: undefined });
  ensure(list.tasks.every((t) => t.artifacts.length === 0), "ListTasks without includeArtifacts returned artifacts");
  const withArt = await fast.client.listTasks({ tenant: "", contextId: "", status: 0, pageSize: 100, pageToken: "", statusTimestampAfter: undefined, includeArtifacts: true });
  ensure(withArt.tasks.some((t) => t.artifacts.length > 0), "includeArtifacts: true returned no artifacts");
});

check("list-tasks-history-length-0", "5", async ({ fast }) => {
  const list = await fast.client.listTasks({ tenant: "", contextId: "", status: 0, pageSize: 100, pageToken: "", historyLength: 0, statusTimestampAfter: undefined });
  ensure(list.tasks.every((t) => t.history.length === 0), "historyLength 0 returned history");
});

check("list-tasks-page-size-validated", "5", async ({ fast }) => {
  for (const pageSize of [0, 101]) {
    const r = await raw(fast.base, { jsonrpc: "2.0", id: 1, method: "ListTasks", params: { pageSize } });
    ensure(r.json?.error?.code === -32602, `pageSize ${pageSize}: ${r.text.slice(0, 200)}`);
  }
  const r = await raw(fast.base, { jsonrpc: "2.0", id: 1, method: "ListTasks", params: { historyLength: -1 } });
  ensure(r.json?.error?.code === -32602, `historyLength -1: ${r.text.slice(0, 200)}`);
});

check("list-tasks-status-and-timestamp-validated", "5", async ({ fast }) => {
  const bad = await raw(fast.base, { jsonrpc: "2.0", id: 1, method: "ListTasks", params: { status: "TASK_STATE_BOGUS" } });
  ensure(bad.json?.error?.code === -32602, `status TASK_STATE_BOGUS: ${bad.text.slice(0, 200)}`);
  const ts = await raw(fast.base, { jsonrpc: "2.0", id: 1, method: "ListTasks", params: { statusTimestampAfter: "yesterday" } });
  ensure(ts.json?.error?.code === -32602, `statusTimestampAfter "yesterday": ${ts.text.slice(0, 200)}`);
  const future = new Date(Date.now() + 3_600_000).toISOString();
  const after = await fast.client.listTasks({ tenant: "", contextId: "", status: 0, pageSize: 100, pageToken: "", statusTimestampAfter: future });
  ensure(after.tasks.length === 0, `statusTimestampAfter ${future} returned ${after.tasks.length} tasks`);
});

check("cancel-terminal-TaskNotCancelableError", "11", async ({ fast }) => {
  ensure(ctx.streamed, "needs send-message-streaming");
  await expectError(() => fast.client.cancelTask({ tenant: "", id: ctx.streamed, metadata: undefined }), TaskNotCancelableError, -32002);
});

check("resubscribe-terminal-UnsupportedOperationError", "7", async ({ fast }) => {
  ensure(ctx.streamed, "needs send-message-streaming");
  await expectError(() => collect(fast.client.resubscribeTask({ tenant: "", id: ctx.streamed })), UnsupportedOperationError, -32004);
});

check("cancel-running-streamed-task", "7", async ({ slow }) => {
  let canceled;
  const events = await collect(slow.client.sendMessageStream(send(message([textPart("scan inbox")]))), {
    onEvent: async (e) => {
      if (!canceled && e.taskId && e.state === TaskState.TASK_STATE_WORKING) {
        canceled = await slow.client.cancelTask({ tenant: "", id: e.taskId, metadata: undefined });
      }
    },
  });
  ensure(canceled, `never saw a working task: ${states(events).join(" ")}`);
  ensure(canceled.status?.state === TaskState.TASK_STATE_CANCELED, `CancelTask answered ${stateName(canceled.status?.state)}`);
  const s = states(events);
  ensure(s.at(-1) === "TASK_STATE_CANCELED", `the stream ended with ${s.at(-1)} (states ${[...new Set(s)].join(" ")}), expected TASK_STATE_CANCELED`);
  const stored = await slow.client.getTask({ tenant: "", id: canceled.id });
  ensure(stored.status?.state === TaskState.TASK_STATE_CANCELED, `GetTask after cancel: ${stateName(stored.status?.state)}`);
});

check("resubscribe-running-task", "7", async ({ slow }) => {
  const first = slow.client.sendMessageStream(send(message([textPart("scan inbox")])));
  const head = await first.next();
  const id = head.value?.payload?.value?.id ?? head.value?.payload?.value?.taskId;
  ensure(id, `no task id in the first event ${JSON.stringify(head.value).slice(0, 200)}`);
  // Drop the first stream, as a client whose connection broke, then resubscribe.
  await first.return(undefined);
  const events = await collect(slow.client.resubscribeTask({ tenant: "", id }));
  const s = states(events);
  ensure(events[0]?.kind === "task", `first resubscribe event is ${events[0]?.kind}`);
  ensure(s.at(-1) === "TASK_STATE_COMPLETED", `resubscribed stream ended with ${s.at(-1)}`);
});

check("return-immediately", "7", async ({ slow }) => {
  const started = Date.now();
  const task = taskOf(
    await slow.client.sendMessage(
      send(message([textPart("scan inbox")]), { acceptedOutputModes: [], taskPushNotificationConfig: undefined, returnImmediately: true }),
    ),
  );
  const took = Date.now() - started;
  const terminal = [TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_REJECTED];
  ensure(!terminal.includes(task.status?.state), `returnImmediately answered a terminal task (${stateName(task.status?.state)}) after ${took} ms`);
});

check("multi-turn-unsubscribe-confirmation", "6", async ({ fast }) => {
  // Only a mailto candidate: if the agent unsubscribes at once (no confirmation), the local
  // provider writes the mail into DATA_DIR/outbox; a one-click or link unsubscribe would leave
  // the machine.
  const mailto = (ctx.candidates ?? []).find((c) => c.method === "mailto");
  ensure(mailto, "no candidate with method mailto in the sample (needs send-message-blocking)");
  const sender = mailto.sender.address;
  const asked = taskOf(await fast.client.sendMessage(send(skill("unsubscribe", { sender }))));
  ctx.created++;
  ensure(
    asked.status?.state === TaskState.TASK_STATE_INPUT_REQUIRED,
    `unsubscribe without confirm answered ${stateName(asked.status?.state)} (${JSON.stringify(asked.artifacts?.[0]?.parts?.[0]?.content?.value ?? statusText(asked)).slice(0, 160)}), expected TASK_STATE_INPUT_REQUIRED with the plan`,
  );
  ensure(statusText(asked).includes(sender), `the plan does not name ${sender}: ${statusText(asked).slice(0, 200)}`);
  const done = taskOf(await fast.client.sendMessage(send(message([textPart("yes, unsubscribe")], { taskId: asked.id, contextId: asked.contextId }))));
  ensure(done.id === asked.id, `the confirmation made a new task ${done.id}`);
  ensure(done.status?.state === TaskState.TASK_STATE_COMPLETED, `after confirming: ${stateName(done.status?.state)}`);
  ctx.confirmed = done;
});

check("message-to-unknown-task-TaskNotFoundError", "6", async ({ fast }) => {
  await expectError(() => fast.client.sendMessage(send(message([textPart("candidates")], { taskId: randomUUID() }))), TaskNotFoundError, -32001);
});

check("message-to-terminal-task-UnsupportedOperationError", "6", async ({ fast }) => {
  ensure(ctx.streamed, "needs send-message-streaming");
  await expectError(() => fast.client.sendMessage(send(message([textPart("candidates")], { taskId: ctx.streamed }))), UnsupportedOperationError, -32004);
});

check("context-id-groups-tasks", "6", async ({ fast }) => {
  const contextId = randomUUID();
  for (let i = 0; i < 2; i++) {
    await fast.client.sendMessage(send(message([textPart("candidates")], { contextId })));
    ctx.created++;
  }
  const list = await fast.client.listTasks({ tenant: "", contextId, status: 0, pageSize: 100, pageToken: "", statusTimestampAfter: undefined });
  ensure(list.tasks.length === 2 && list.tasks.every((t) => t.contextId === contextId), `ListTasks(contextId) returned ${list.tasks.length} tasks`);
});

check("push-notifications-declared-or-PushNotificationNotSupportedError", "8", async ({ fast }) => {
  const card = await fast.client.getAgentCard();
  ensure(ctx.streamed, "needs send-message-streaming");
  const config = { tenant: "", id: "", taskId: ctx.streamed, url: "http://127.0.0.1:9/hook", token: "t", authentication: undefined };
  if (card.capabilities?.pushNotifications) {
    const made = await fast.client.createTaskPushNotificationConfig(config);
    const got = await fast.client.getTaskPushNotificationConfig({ tenant: "", taskId: ctx.streamed, id: made.id });
    ensure(got.url === config.url, `get answered ${JSON.stringify(got)}`);
    const list = await fast.client.listTaskPushNotificationConfig({ tenant: "", taskId: ctx.streamed, pageSize: 10, pageToken: "" });
    ensure(list.configs.length === 1, `list answered ${list.configs.length} configs`);
    await fast.client.deleteTaskPushNotificationConfig({ tenant: "", taskId: ctx.streamed, id: made.id });
  } else {
    await expectError(() => fast.client.createTaskPushNotificationConfig(config), PushNotificationNotSupportedError, -32003);
  }
});

check("wire-push-notification-config-answer", "8", async ({ fast }) => {
  // The SDK refuses push calls itself when the card declares no pushNotifications; the agent's
  // own answer, on the wire: -32003 PushNotificationNotSupported (or success when declared).
  const card = await fast.client.getAgentCard();
  ensure(ctx.streamed, "needs send-message-streaming");
  const r = await raw(fast.base, { jsonrpc: "2.0", id: 1, method: "CreateTaskPushNotificationConfig", params: { taskId: ctx.streamed, url: "http://127.0.0.1:9/hook" } });
  if (card.capabilities?.pushNotifications) ensure(r.json?.result, `declared, but: ${r.text.slice(0, 200)}`);
  else ensure(r.json?.error?.code === -32003, `not declared, answered ${r.text.slice(0, 200)}, expected -32003`);
});

check("wire-message-without-message-id-refused", "9", async ({ fast }) => {
  const r = await raw(fast.base, { jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message: { role: "ROLE_USER", parts: [{ text: "candidates" }] } } });
  ctx.created += r.json?.result ? 1 : 0;
  ensure(r.json?.error?.code === -32602, `no messageId: ${r.text.slice(0, 160)}`);
});

check("wire-unknown-role-refused", "9", async ({ fast }) => {
  const r = await raw(fast.base, { jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message: { messageId: randomUUID(), role: "ROLE_BOGUS", parts: [{ text: "candidates" }] } } });
  ctx.created += r.json?.result ? 1 : 0;
  ensure(r.json?.error?.code === -32602, `role ROLE_BOGUS: ${r.text.slice(0, 160)}`);
});

check("wire-notification-gets-no-response", "9", async ({ fast }) => {
  const r = await raw(fast.base, { jsonrpc: "2.0", method: "GetTask", params: { id: randomUUID() } });
  ensure(r.text.trim() === "" && r.status >= 200 && r.status < 300, `a notification was answered: HTTP ${r.status} ${r.text.slice(0, 200)}`);
});

check("wire-request-id-object-invalid-request", "9", async ({ fast }) => {
  const r = await raw(fast.base, { jsonrpc: "2.0", id: { x: 1 }, method: "GetTask", params: { id: randomUUID() } });
  ensure(r.json?.error?.code === -32600, `id {x:1}: ${r.text.slice(0, 200)}`);
});

check("wire-a2a-version-patch-accepted", "9", async ({ fast }) => {
  const r = await raw(fast.base, { jsonrpc: "2.0", id: 1, method: "ListTasks", params: { pageSize: 1 } }, { "A2A-Version": "1.0.1" });
  ensure(r.json?.result !== undefined, `A2A-Version 1.0.1: ${r.text.slice(0, 200)}`);
});

check("wire-unknown-fields-not-stored", "9", async ({ fast }) => {
  const r = await raw(fast.base, {
    jsonrpc: "2.0",
    id: 1,
    method: "SendMessage",
    params: { message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text: "candidates", bogusPartField: 1 }], bogusField: "x" } },
  });
  ctx.created += r.json?.result ? 1 : 0;
  const id = r.json?.result?.task?.id;
  ensure(id, `SendMessage answered ${r.text.slice(0, 200)}`);
  const got = await raw(fast.base, { jsonrpc: "2.0", id: 2, method: "GetTask", params: { id } });
  const at = got.text.indexOf("bogus");
  ensure(at < 0, `unknown fields stored and returned by GetTask: ...${got.text.slice(Math.max(0, at - 120), at + 60)}...`);
});

// ---- run -------------------------------------------------------------------------------------

function envFor(data, mbox) {
  return {
    PATH: process.env.PATH ?? "",
    AUTH_MODE: "api_key",
    AGENT_API_KEY: KEY,
    DATA_DIR: data,
    MAIL_PROVIDER: "local",
    LOCAL_MBOX: mbox,
    LOCAL_ICS: path.join(sample, "calendar.ics"),
    BIND_ADDR: "127.0.0.1:0",
    SCHEDULER_ENABLED: "false",
    RATE_LIMIT_READ_PER_MIN: "100000",
    RATE_LIMIT_READ_BURST: "100000",
    RUST_LOG: "warn",
    NO_COLOR: "1",
  };
}

const started = Date.now();
const scratch = mkdtempSync(path.join(tmpdir(), "quietbox-a2a-js-"));
const slowMbox = path.join(scratch, "slow.mbox");
const one = readFileSync(path.join(sample, "inbox.mbox"), "utf8");
writeFileSync(slowMbox, Array.from({ length: SLOW_COPIES }, (_, i) => one.replaceAll(/^Message-ID: <(.*)>$/gim, `Message-ID: <copy${i}.$1>`)).join(""));
const servers = [];
let status = 1;
try {
  for (const [name, mbox] of [["fast", path.join(sample, "inbox.mbox")], ["slow", slowMbox]]) {
    const data = path.join(scratch, name);
    const { proc, base } = await startQuietbox(binary, envFor(data, mbox));
    servers.push({ name, proc, base });
  }
  const [fast, slow] = await Promise.all(
    servers.map(async (s) => ({ ...s, client: await client(s.base) })),
  );
  const rows = [];
  for (const c of checks) {
    const t0 = Date.now();
    try {
      // A check that hangs (a stream that never ends) fails alone; the process exit at the end
      // closes what it left open.
      let timer;
      const limit = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no result within ${CHECK_TIMEOUT_MS / 1000} s`)), CHECK_TIMEOUT_MS);
      });
      await Promise.race([c.fn({ fast, slow }), limit]).finally(() => clearTimeout(timer));
      rows.push({ name: c.name, status: "passed", detail: "" });
    } catch (err) {
      rows.push({ name: c.name, status: "failed", detail: `[item ${c.item}] ${err?.message ?? err}`.slice(0, 500) });
    }
    if (process.env.QUIETBOX_CONFORMANCE_VERBOSE) console.error(`${c.name}: ${Date.now() - t0} ms`);
  }
  status = verdict("a2a js sdk", rows, readKnownFailures(known_path), path.basename(known_path));
  console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
} finally {
  for (const s of servers) {
    const code = await stopQuietbox(s.proc);
    if (code !== 0 && code !== null) {
      console.log(`quietbox-a2a (${s.name}) exited with ${code} on SIGTERM`);
      status = 1;
    }
  }
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(status);
