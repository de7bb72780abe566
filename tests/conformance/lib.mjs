// Shared pieces of the conformance runners: the quietbox process, the authenticating loopback
// proxy and the known-failures list.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import { createInterface } from "node:readline";

/// Starts a quietbox binary on a free loopback port; resolves to { proc, base } once it prints
/// its "listening on ADDR" line (the tests/interop/*.py convention).
export function startQuietbox(binary, env) {
  return new Promise((resolve, reject) => {
    const proc = spawn(binary, [], { env, stdio: ["ignore", "pipe", "inherit"] });
    const lines = createInterface({ input: proc.stdout });
    const timer = setTimeout(() => {
      proc.kill("SIGTERM");
      reject(new Error(`${binary} did not print "listening on" within 30 s`));
    }, 30_000);
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${binary} exited before listening (code ${code}, signal ${signal})`));
    });
    lines.once("line", (line) => {
      clearTimeout(timer);
      const m = /^listening on (\S+)$/.exec(line.trim());
      if (!m) {
        proc.kill("SIGTERM");
        reject(new Error(`unexpected first line ${JSON.stringify(line)}`));
        return;
      }
      proc.removeAllListeners("exit");
      lines.on("line", () => {});
      resolve({ proc, base: `http://${m[1]}` });
    });
  });
}

/// Stops a started quietbox; resolves to its exit code (null on a signal).
export function stopQuietbox(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve(proc.exitCode);
      return;
    }
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    proc.kill("SIGTERM");
  });
}

/// A loopback HTTP proxy that forwards every request unchanged (method, path, body, and the
/// client's own Host and Origin headers, so the server's Host/Origin checks still see what the
/// client sent) to `upstream`, adding the headers in `add` (the API key: the MCP conformance
/// suite cannot send credentials, and quietbox has no unauthenticated mode). Responses stream
/// through chunk by chunk (SSE). Resolves to { server, url }.
export function startProxy(upstream, add) {
  const target = new URL(upstream);
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers, ...add };
    const out = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers,
        setHost: false,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.rawHeaders);
        res.flushHeaders();
        answer.pipe(res);
      },
    );
    out.on("error", (err) => {
      if (!res.headersSent) {
        res.writeHead(502, { "content-type": "text/plain" });
      }
      res.end(`proxy: ${err.message}`);
    });
    res.on("close", () => out.destroy());
    req.pipe(out);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({ server, url: `http://127.0.0.1:${server.address().port}` });
    });
  });
}

/// Reads a known-failures file: one name per line, then whitespace and the reason (required);
/// `#` starts a comment line. Returns Map(name -> reason); throws on a line without a reason.
export function readKnownFailures(path) {
  const known = new Map();
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) return;
      const m = /^(\S+)\s+(.+)$/.exec(line);
      if (!m) throw new Error(`${path}:${i + 1}: "${line}" has no reason after the name`);
      if (known.has(m[1])) throw new Error(`${path}:${i + 1}: ${m[1]} listed twice`);
      known.set(m[1], m[2]);
    });
  return known;
}

/// "P passed, F failed, N not applicable" of result rows.
export function counts(results) {
  const n = (s) => results.filter((r) => r.status === s).length;
  return `${n("passed")} passed, ${n("failed")} failed, ${n("not applicable")} not applicable`;
}

/// Judges results against the known-failures list and prints the verdict. `results` is an array
/// of { name, status: "passed" | "failed" | "not applicable", detail }. Exit status 1 when an
/// applicable check failed without being listed, or a listed one passed (a stale entry: remove
/// it, the list only shrinks), or a listed name is not a check at all.
export function verdict(label, results, known, knownPath) {
  const count = (s) => results.filter((r) => r.status === s).length;
  const problems = [];
  const width = Math.max(...results.map((r) => r.name.length), 10);
  for (const r of results) {
    let mark = r.status;
    if (r.status === "failed" && known.has(r.name)) mark = "failed (known)";
    if (r.status === "failed" && !known.has(r.name)) problems.push(`${r.name}: failed: ${r.detail}`);
    if (r.status === "passed" && known.has(r.name)) {
      problems.push(`${r.name}: passes now but is listed in ${knownPath}: remove the line`);
      mark = "passed (stale list entry)";
    }
    if (r.status === "not applicable" && known.has(r.name)) {
      problems.push(`${r.name}: does not apply but is listed in ${knownPath}: remove the line`);
    }
    console.log(`${r.name.padEnd(width)}  ${mark.padEnd(16)}  ${r.status === "passed" ? "" : r.detail}`);
  }
  const names = new Set(results.map((r) => r.name));
  for (const name of known.keys()) {
    if (!names.has(name)) problems.push(`${name}: listed in ${knownPath} but no such check ran`);
  }
  const knownFailed = results.filter((r) => r.status === "failed" && known.has(r.name)).length;
  console.log(
    `${label}: ${count("passed")} passed, ${count("failed")} failed (${knownFailed} known), ` +
      `${count("not applicable")} not applicable`,
  );
  if (problems.length > 0) {
    console.log(`${label}: FAILED\n  ${problems.join("\n  ")}`);
    return 1;
  }
  return 0;
}
