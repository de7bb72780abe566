// The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in package.json)
// against the real quietbox-mcp binary over streamable HTTP on loopback. Run by mcp.sh on Node 22
// from target/conformance (where the packages are); see README.md.
//
// Every server scenario of the suite runs. A scenario applies when it tests the base protocol or
// the streamable HTTP transport, or a capability the server declares in `initialize`, or a
// fixture (a tool, resource, template or prompt of the suite's reference server, e.g.
// `test_simple_text`) that the server lists; otherwise it is "not applicable". A scenario fails
// when one of its checks reports FAILURE. Exit status 1 on an applicable failing scenario that
// mcp-known-failures.txt does not list, and on a stale entry of that list.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { counts, readKnownFailures, startProxy, startQuietbox, stopQuietbox, verdict } from "./lib.mjs";
import { specChecks } from "./mcp_spec.mjs";

const KEY = "mcp-conformance-key-0123456789abcdef0123";
const [binary, sample, known_path, out_dir] = process.argv.slice(2);
if (!out_dir) {
  console.error("usage: node mcp_conformance.mjs <quietbox-mcp> <data/sample> <known-failures> <out dir>");
  process.exit(2);
}
const cli = path.join(import.meta.dirname, "node_modules/@modelcontextprotocol/conformance/dist/index.js");

// What each scenario needs beyond the base protocol; scenarios absent here (a newer suite)
// apply unconditionally, so a suite upgrade cannot hide a failure.
const ALWAYS = new Set(["server-initialize", "ping", "server-sse-multiple-streams", "dns-rebinding-protection"]);
const CAPABILITY = {
  "tools-list": "tools",
  "logging-set-level": "logging",
  "completion-complete": "completions",
  "resources-list": "resources",
  "resources-subscribe": "resources.subscribe",
  "resources-unsubscribe": "resources.subscribe",
  "prompts-list": "prompts",
};
const FIXTURE = {
  "tools-call-simple-text": ["tool", "test_simple_text"],
  "tools-call-image": ["tool", "test_image_content"],
  "tools-call-audio": ["tool", "test_audio_content"],
  "tools-call-embedded-resource": ["tool", "test_embedded_resource"],
  "tools-call-mixed-content": ["tool", "test_multiple_content_types"],
  "tools-call-with-logging": ["tool", "test_tool_with_logging"],
  "tools-call-error": ["tool", "test_error_handling"],
  "tools-call-with-progress": ["tool", "test_tool_with_progress"],
  "tools-call-sampling": ["tool", "test_sampling"],
  "tools-call-elicitation": ["tool", "test_elicitation"],
  "json-schema-2020-12": ["tool", "json_schema_2020_12_tool"],
  "elicitation-sep1034-defaults": ["tool", "test_elicitation_sep1034_defaults"],
  "elicitation-sep1330-enums": ["tool", "test_elicitation_sep1330_enums"],
  "server-sse-polling": ["tool", "test_reconnection"],
  "resources-read-text": ["resource", "test://static-text"],
  "resources-read-binary": ["resource", "test://static-binary"],
  "resources-templates-read": ["template", "test://template/{id}/data"],
  "prompts-get-simple": ["prompt", "test_simple_prompt"],
  "prompts-get-with-args": ["prompt", "test_prompt_with_arguments"],
  "prompts-get-embedded-resource": ["prompt", "test_prompt_with_embedded_resource"],
  "prompts-get-with-image": ["prompt", "test_prompt_with_image"],
};

/// What the server declares: its capabilities and the names it lists.
async function declarations(url) {
  const client = new Client({ name: "quietbox-conformance-probe", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  const caps = client.getServerCapabilities() ?? {};
  const listed = { tool: new Set(), resource: new Set(), template: new Set(), prompt: new Set() };
  if (caps.tools) (await client.listTools()).tools.forEach((t) => listed.tool.add(t.name));
  if (caps.resources) {
    (await client.listResources()).resources.forEach((r) => listed.resource.add(r.uri));
    (await client.listResourceTemplates()).resourceTemplates.forEach((t) => listed.template.add(t.uriTemplate));
  }
  if (caps.prompts) (await client.listPrompts()).prompts.forEach((p) => listed.prompt.add(p.name));
  await client.close();
  return { caps, listed };
}

function applies(scenario, { caps, listed }) {
  if (ALWAYS.has(scenario)) return null;
  if (scenario in CAPABILITY) {
    const [area, sub] = CAPABILITY[scenario].split(".");
    const ok = sub ? caps[area]?.[sub] === true : caps[area] !== undefined;
    return ok ? null : `the server does not declare capability ${CAPABILITY[scenario]}`;
  }
  if (scenario in FIXTURE) {
    const [kind, name] = FIXTURE[scenario];
    return listed[kind].has(name) ? null : `fixture ${kind} ${name} of the reference server not listed`;
  }
  return null;
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, out }));
  });
}

/// The suite's own list of server scenarios (`conformance list --server`).
async function scenarios() {
  const { code, out } = await run(process.execPath, [cli, "list", "--server"]);
  if (code !== 0) throw new Error(`conformance list failed:\n${out}`);
  return [...out.matchAll(/^\s+- (\S+)/gm)].map((m) => m[1]);
}

/// Reads out_dir/server-<scenario>-<timestamp>/checks.json of one suite run.
function results(dir) {
  const byScenario = new Map();
  for (const entry of readdirSync(dir)) {
    const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(entry);
    if (!m) continue;
    byScenario.set(m[1], JSON.parse(readFileSync(path.join(dir, entry, "checks.json"), "utf8")));
  }
  return byScenario;
}

const started = Date.now();
const data = mkdtempSync(path.join(tmpdir(), "quietbox-mcp-conformance-"));
const env = {
  PATH: process.env.PATH ?? "",
  AUTH_MODE: "api_key",
  AGENT_API_KEY: KEY,
  DATA_DIR: data,
  MAIL_PROVIDER: "local",
  LOCAL_MBOX: path.join(sample, "inbox.mbox"),
  LOCAL_ICS: path.join(sample, "calendar.ics"),
  BIND_ADDR: "127.0.0.1:0",
  SCHEDULER_ENABLED: "false",
  // The suite calls the reference server's fixture tools: quietbox's warnings about them are noise.
  RUST_LOG: "error",
  NO_COLOR: "1",
};
const { proc, base } = await startQuietbox(binary, env);
// The suite has its own timeouts; this bounds everything else (a hung probe or spec check).
const watchdog = setTimeout(() => {
  console.log("mcp: no verdict within 180 s; stopping");
  proc.kill("SIGKILL");
  process.exit(1);
}, 180_000);
watchdog.unref();
let status = 1;
try {
  const proxy = await startProxy(`${base}/mcp`, { "x-api-key": KEY });
  const url = `${proxy.url}/mcp`;
  const declared = await declarations(url);
  console.log(
    `quietbox-mcp at ${base} (through ${proxy.url}): capabilities ${Object.keys(declared.caps).join(", ")}; ` +
      `${declared.listed.tool.size} tools, ${declared.listed.resource.size} resources, ` +
      `${declared.listed.prompt.size} prompts`,
  );
  const names = await scenarios();
  rmSync(out_dir, { recursive: true, force: true });
  // One run of the whole (active) suite, as CI runs it; its exit status is ours to judge.
  const suite = await run(process.execPath, [cli, "server", "--url", url, "--output-dir", out_dir]);
  if (process.env.QUIETBOX_CONFORMANCE_VERBOSE) console.log(suite.out);
  const checks = results(out_dir);
  const rows = names.map((name) => {
    const why = applies(name, declared);
    const list = checks.get(name);
    if (why) return { name, status: "not applicable", detail: why };
    if (!list) return { name, status: "failed", detail: "the suite wrote no checks.json for it" };
    const failed = list.filter((c) => c.status === "FAILURE");
    if (failed.length === 0) return { name, status: "passed", detail: "" };
    const detail = failed.map((c) => `${c.id}: ${c.errorMessage ?? "FAILURE"}`).join("; ");
    return { name, status: "failed", detail: detail.length > 400 ? `${detail.slice(0, 400)}...` : detail };
  });
  proxy.server.close();
  const spec = await specChecks({ url: `${base}/mcp`, key: KEY, binary, env });
  status = verdict("mcp", [...rows, ...spec], readKnownFailures(known_path), path.basename(known_path));
  console.log(`mcp conformance suite (@modelcontextprotocol/conformance): ${counts(rows)}`);
  console.log(`mcp spec checks (mcp_spec.mjs): ${counts(spec)}`);
  console.log(`(suite results in ${out_dir}; ${((Date.now() - started) / 1000).toFixed(1)} s)`);
} finally {
  const code = await stopQuietbox(proc);
  rmSync(data, { recursive: true, force: true });
  if (code !== 0 && code !== null) {
    console.log(`quietbox-mcp exited with ${code} on SIGTERM`);
    status = 1;
  }
}
process.exit(status);
