//! `cargo xtask bench [--quick]`: every speed goal of quietbox measured side by side with its
//! limit or its alternative, in one run, and written to `target/bench/report.md`.
//!
//! Each comparison runs A/B interleaved (the order alternating between rounds) and takes medians
//! over the rounds, so the machine's noise mostly cancels in the ratio. `--quick` is the CI size
//! (a 64 MiB mbox, 1,000 Gmail messages, short rounds); the default is the full size (a 1 GiB
//! mbox, 10,000 Gmail messages). A goal that is missed, or a figure that could not be measured,
//! is reported as not met; the command fails only when a figure could not be measured.
//!
//! The pieces it drives: `crates/auth/benches/verify.rs` (criterion), `crates/gmail/benches/
//! scan.rs` (fake Google with the quota), `crates/gmail/examples/mbox_scan.rs` (the local
//! provider), `bench/python_mbox_headers.py` (the Python reference), `bench/` (a bare hyper
//! server and a JWT minter), `wrk` (the load generator), the release binaries, and for the
//! scale-out rows the PostgreSQL of `QUIETBOX_TEST_DATABASE_URL` (through `psql`) and a
//! `redis-server`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::fleet::release_dir;
use crate::sample;

/// How big and how long: the CI size or the full size.
struct Size {
    name: &'static str,
    rounds: usize,
    /// Criterion's warm-up and measurement seconds per function and round.
    criterion_secs: (u32, u32),
    /// Seconds of load per server and round.
    http_secs: u32,
    gmail_messages: usize,
    mbox_mib: u64,
}

const QUICK: Size = Size {
    name: "quick (CI)",
    rounds: 3,
    criterion_secs: (1, 1),
    http_secs: 3,
    gmail_messages: 1_000,
    mbox_mib: 64,
};

const FULL: Size = Size {
    name: "full",
    // Three rounds: Python takes minutes on the 1 GiB mbox.
    rounds: 3,
    criterion_secs: (1, 3),
    http_secs: 8,
    gmail_messages: 10_000,
    mbox_mib: 1024,
};

/// One line of the report. `met` is `None` when the figure could not be measured.
struct Row {
    figure: String,
    ours: String,
    reference: String,
    ratio: String,
    goal: String,
    met: Option<bool>,
}

impl Row {
    fn failed(figure: &str, goal: &str, error: &anyhow::Error) -> Row {
        Row {
            figure: figure.to_owned(),
            ours: format!("not measured: {error:#}"),
            reference: "—".to_owned(),
            ratio: "—".to_owned(),
            goal: goal.to_owned(),
            met: None,
        }
    }
}

/// Everything measured so far, plus notes that explain the figures.
#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    /// Runs one benchmark; an error becomes a "not measured" row instead of stopping the rest.
    fn section(
        &mut self,
        name: &str,
        goals: &[(&str, &str)],
        f: impl FnOnce(&mut Report) -> Result<()>,
    ) {
        eprintln!("== {name}");
        let start = Instant::now();
        if let Err(error) = f(self) {
            eprintln!("   {name} failed: {error:#}");
            for (figure, goal) in goals {
                self.rows.push(Row::failed(figure, goal, &error));
            }
        }
        eprintln!("   ({:.0} s)", start.elapsed().as_secs_f64());
    }
}

/// Entry point: `cargo xtask bench [--quick | --build-only]`. `--build-only` makes the release
/// build and stops: `.ci/run` builds once for the soak run and the benchmarks.
pub fn run(args: &[String]) -> Result<()> {
    let size = match args.first().map(String::as_str) {
        None => &FULL,
        Some("--quick") => &QUICK,
        Some("--build-only") => return build().map(|_| ()),
        Some(other) => {
            bail!("usage: cargo xtask bench [--quick | --build-only] (unknown argument {other:?})")
        }
    };
    let root = std::env::current_dir().context("no current directory")?;
    let out = root.join("target/bench");
    std::fs::create_dir_all(out.join("logs")).context("cannot create target/bench")?;
    let build_started = Instant::now();
    let benches = build()?;
    let built = build_started.elapsed();
    let started = Instant::now();

    let mut report = Report::default();
    report.section(
        "auth",
        &[
            ("auth HS256 verify", "≤ 1.2× raw"),
            ("auth RS256 verify (JWKS cached)", "≤ 1.2× raw"),
        ],
        |r| auth(r, size, &root, &out, &benches.verify),
    );
    report.section(
        "http",
        &[
            (
                "HTTP GET /v1/unsubscribe/candidates (JWT) req/s",
                "≥ 60% of bare",
            ),
            ("HTTP p99 latency", "< 5 ms"),
        ],
        |r| http(r, size, &root, &out),
    );
    report.section("scale-out", &SCALE_OUT_GOALS, |r| {
        scale_out(r, size, &root, &out)
    });
    report.section(
        "gmail scan",
        &[
            ("Gmail full scan rate", "≥ 95% of quota"),
            ("Gmail incremental rescan after 50 new", "≤ 60 calls"),
        ],
        |r| gmail(r, size, &root, &out, &benches.scan),
    );
    report.section(
        "local scan",
        &[("local mbox scan", "≥ 20× Python")],
        |r| local(r, size, &root, &out),
    );
    report.section(
        "footprint",
        &[("footprint", "< 20 MB RSS, < 100 ms to /health")],
        |r| footprint(r, size, &root, &out),
    );

    let text = render(&report, size, built, started.elapsed());
    println!("{text}");
    std::fs::write(out.join("report.md"), &text).context("cannot write target/bench/report.md")?;
    eprintln!("wrote target/bench/report.md");
    let unmeasured = report.rows.iter().filter(|r| r.met.is_none()).count();
    if unmeasured > 0 {
        bail!("{unmeasured} figure(s) could not be measured; see the report");
    }
    Ok(())
}

/// The criterion-style bench executables [`build`] made (run directly, as `cargo bench` would:
/// from the package's directory with `--bench`).
struct Benches {
    /// `crates/auth/benches/verify.rs`.
    verify: PathBuf,
    /// `crates/gmail/benches/scan.rs`.
    scan: PathBuf,
}

/// The release build of everything the benchmarks and the soak run use (the three binaries,
/// `bench/`'s helpers, the `mbox_scan` example and the two benches), in one cargo invocation so
/// that all of it shares one feature resolution and each dependency compiles once. Separate
/// invocations (`-p` lists, `--example`, `cargo bench -p …`) each resolved features of their own
/// and recompiled much of the graph. The benches then run from their executables: `cargo bench
/// -p quietbox-auth` would resolve features once more and rebuild.
fn build() -> Result<Benches> {
    let mut args = vec![
        "build",
        "--release",
        "--message-format=json-render-diagnostics",
    ];
    for bin in crate::fleet::BINARIES
        .into_iter()
        .chain(["bare-server", "mint-token"])
    {
        args.extend(["--bin", bin]);
    }
    args.extend([
        "--example",
        "mbox_scan",
        "--bench",
        "verify",
        "--bench",
        "scan",
    ]);
    eprintln!("$ cargo {}", args.join(" "));
    let mut child = Command::new("cargo")
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start cargo")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut verify = None;
    let mut scan = None;
    for line in BufReader::new(stdout).lines() {
        let message: serde_json::Value = match serde_json::from_str(&line?) {
            Ok(message) => message,
            Err(_) => continue,
        };
        let target = &message["target"];
        let is_bench = target["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "bench"));
        let (Some(name), Some(executable)) =
            (target["name"].as_str(), message["executable"].as_str())
        else {
            continue;
        };
        match name {
            "verify" if is_bench => verify = Some(PathBuf::from(executable)),
            "scan" if is_bench => scan = Some(PathBuf::from(executable)),
            _ => {}
        }
    }
    let status = child.wait().context("cargo build did not finish")?;
    if !status.success() {
        bail!("`cargo {}` failed with {status}", args.join(" "));
    }
    Ok(Benches {
        verify: verify.context("cargo built no executable for the verify bench")?,
        scan: scan.context("cargo built no executable for the scan bench")?,
    })
}

// ---------------------------------------------------------------------------------------------
// 1. Auth

/// Criterion's verify bench, once per round; each round measures raw and `Authenticator` next to
/// each other, and the ratio is the median of the rounds' ratios.
fn auth(report: &mut Report, size: &Size, root: &Path, out: &Path, bench: &Path) -> Result<()> {
    let criterion = out.join("criterion");
    let (warm, measure) = size.criterion_secs;
    let groups = [
        ("hs256", "auth HS256 verify"),
        ("rs256_cached", "auth RS256 verify (JWKS cached)"),
    ];
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); groups.len()];
    for round in 0..size.rounds {
        let log = out.join(format!("logs/auth-{round}.log"));
        let status = Command::new(bench)
            .arg("--bench")
            .args([
                "--warm-up-time",
                &warm.to_string(),
                "--measurement-time",
                &measure.to_string(),
            ])
            .arg("--noplot")
            .env("CRITERION_HOME", &criterion)
            .current_dir(root.join("crates/auth"))
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?)
            .status()
            .with_context(|| format!("cannot run {}", bench.display()))?;
        if !status.success() {
            bail!("the auth bench failed ({status}); see {}", log.display());
        }
        for (i, (group, _)) in groups.iter().enumerate() {
            samples[i].0.push(criterion_median(
                &criterion.join(group).join("authenticator"),
            )?);
            samples[i].1.push(criterion_median(
                &criterion.join(group).join("raw_jsonwebtoken"),
            )?);
        }
    }
    for ((_, figure), (ours, raw)) in groups.iter().zip(samples) {
        let ratios: Vec<f64> = ours.iter().zip(&raw).map(|(a, b)| a / b).collect();
        let ratio = median(&ratios);
        report.rows.push(Row {
            figure: (*figure).to_owned(),
            ours: format!("{:.2} µs", median(&ours) / 1000.0),
            reference: format!("{:.2} µs raw jsonwebtoken", median(&raw) / 1000.0),
            ratio: format!("{ratio:.2}×"),
            goal: "≤ 1.2× raw".to_owned(),
            met: Some(ratio <= 1.2),
        });
    }
    report.notes.push(format!(
        "Auth: criterion medians per verification, {} rounds of `cargo bench -p quietbox-auth \
         --bench verify`; the ratio is the median of the per-round ratios.",
        size.rounds
    ));
    Ok(())
}

/// The median point estimate (ns) criterion wrote for one function.
fn criterion_median(dir: &Path) -> Result<f64> {
    let path = dir.join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let after = text
        .split_once("\"median\"")
        .and_then(|(_, rest)| rest.split_once("\"point_estimate\":"))
        .map(|(_, rest)| rest)
        .with_context(|| format!("no median in {}", path.display()))?;
    number_prefix(after).with_context(|| format!("bad median in {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// 2. HTTP

const JWT_SECRET: &str = "bench-secret-0123456789abcdef0123456789";

/// quietbox-api (JWT, file state, local sample) and the bare hyper server answering the same
/// body, alternately loaded by `wrk` on loopback.
fn http(report: &mut Report, size: &Size, root: &Path, out: &Path) -> Result<()> {
    let wrk = ensure_wrk()?;
    let token = output(
        Command::new(release_dir().join("mint-token")).args([JWT_SECRET, "unsubscribe:read"]),
    )?;
    let token = token.trim();
    let data = tempdir(out, "http")?;
    let sample = root.join("data/sample");
    let api = Server::start(
        &release_dir().join("quietbox-api"),
        &[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWT_SECRET", JWT_SECRET),
            ("DATA_DIR", &data.display().to_string()),
            (
                "LOCAL_MBOX",
                &sample.join("inbox.mbox").display().to_string(),
            ),
            (
                "LOCAL_ICS",
                &sample.join("calendar.ics").display().to_string(),
            ),
            ("BIND_ADDR", "127.0.0.1:0"),
            // Candidates take from the cheap-read budget: raised (with the others) so that the
            // benchmark measures serving, not 429s.
            ("RATE_LIMIT_PER_MIN", "100000000"),
            ("RATE_LIMIT_BURST", "100000000"),
            ("RATE_LIMIT_READ_PER_MIN", "100000000"),
            ("RATE_LIMIT_READ_BURST", "100000000"),
        ],
        &out.join("logs/http-api.log"),
    )?;
    let path = "/v1/unsubscribe/candidates";
    let auth = format!("Bearer {token}");
    // The first call scans the sample; the benchmark measures the steady state after it.
    let (status, body) = http_get(&api.addr, path, &[("authorization", &auth)])?;
    if status != 200 {
        bail!("quietbox-api answered {status} to {path}");
    }
    let body_file = out.join("logs/candidates.json");
    std::fs::write(&body_file, &body)?;
    let bare = Server::start_with_args(
        &release_dir().join("bare-server"),
        &[body_file.display().to_string()],
        &[],
        &out.join("logs/http-bare.log"),
    )?;

    let mut ours = Vec::new();
    let mut reference = Vec::new();
    let mut p99s = Vec::new();
    let mut bad_responses = 0u64;
    for round in 0..size.rounds {
        for which in alternate(round) {
            let (server, header) = if which == 0 {
                (&api, Some(auth.as_str()))
            } else {
                (&bare, None)
            };
            let result = run_wrk(&wrk, &server.addr, path, header, size.http_secs)?;
            if which == 0 {
                ours.push(result.requests_per_second);
                p99s.push(result.p99_ms);
                bad_responses += result.non_2xx;
            } else {
                reference.push(result.requests_per_second);
            }
        }
    }
    let ratios: Vec<f64> = ours.iter().zip(&reference).map(|(a, b)| a / b).collect();
    let ratio = median(&ratios);
    let ok = bad_responses == 0;
    report.rows.push(Row {
        figure: "HTTP GET /v1/unsubscribe/candidates (JWT) req/s".to_owned(),
        ours: format!("{:.0} req/s", median(&ours)),
        reference: format!("{:.0} req/s bare hyper", median(&reference)),
        ratio: format!("{:.0}%", ratio * 100.0),
        goal: "≥ 60% of bare".to_owned(),
        met: Some(ok && ratio >= 0.6),
    });
    let p99 = median(&p99s);
    report.rows.push(Row {
        figure: "HTTP p99 latency (same load)".to_owned(),
        ours: format!("{p99:.2} ms"),
        reference: "—".to_owned(),
        ratio: "—".to_owned(),
        goal: "< 5 ms".to_owned(),
        met: Some(ok && p99 < 5.0),
    });
    report.notes.push(format!(
        "HTTP: `wrk -t1 -c{WRK_CONNECTIONS} -d{}s --latency` on loopback, {} rounds alternating \
         quietbox-api and the bare server (same {}-byte body); medians of the rounds. \
         quietbox-api runs with its defaults (info logs, JSON-file state, the sample mbox), \
         AUTH_MODE=jwt, and rate limits raised.{}",
        size.http_secs,
        size.rounds,
        body.len(),
        if ok {
            String::new()
        } else {
            format!(" {bad_responses} responses were not 2xx: goals marked not met.")
        }
    ));
    Ok(())
}

const WRK_CONNECTIONS: u32 = 16;

struct WrkResult {
    requests_per_second: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn run_wrk(wrk: &str, addr: &str, path: &str, auth: Option<&str>, secs: u32) -> Result<WrkResult> {
    let mut command = Command::new(wrk);
    command.args([
        "-t1",
        &format!("-c{WRK_CONNECTIONS}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    if let Some(auth) = auth {
        command.args(["-H", &format!("Authorization: {auth}")]);
    }
    command.arg(format!("http://{addr}{path}"));
    let text = output(&mut command)?;
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
            .with_context(|| format!("no {prefix:?} in wrk's output:\n{text}"))
    };
    let requests_per_second = number_prefix(field("Requests/sec:")?)?;
    let p99_ms = duration_ms(field("99%")?)?;
    let non_2xx = match field("Non-2xx or 3xx responses:") {
        Ok(n) => number_prefix(n)? as u64,
        Err(_) => 0,
    };
    Ok(WrkResult {
        requests_per_second,
        p99_ms,
        non_2xx,
    })
}

/// wrk's durations (`812.00us`, `1.25ms`, `2.00s`, `1.50m`), in milliseconds.
fn duration_ms(text: &str) -> Result<f64> {
    let duration = humantime::parse_duration(text.trim())
        .with_context(|| format!("not a duration: {text:?}"))?;
    Ok(duration.as_secs_f64() * 1000.0)
}

/// `wrk` from PATH, installed from the distribution when missing and possible.
fn ensure_wrk() -> Result<String> {
    let found = || {
        Command::new("wrk")
            .arg("--version")
            .output()
            .map(|_| "wrk".to_owned())
            .ok()
    };
    if let Some(wrk) = found() {
        return Ok(wrk);
    }
    eprintln!("   wrk is missing: trying `apt-get install -y wrk`");
    let _ = Command::new("apt-get")
        .args(["install", "-y", "wrk"])
        .stdout(Stdio::null())
        .status();
    found().context("wrk is not installed and `apt-get install -y wrk` did not install it")
}

// ---------------------------------------------------------------------------------------------
// 2b. Scale-out: the candidates read on PostgreSQL and with the Redis limiter

/// The figures of [`scale_out`], for the section's failure rows.
const SCALE_OUT_GOALS: [(&str, &str); 3] = [
    (
        "PostgreSQL: GET /v1/unsubscribe/candidates, 1 replica",
        "≥ 50% of file, p99 < 5 ms",
    ),
    (
        "PostgreSQL: 3 replicas loaded at once (sum)",
        "≥ 50% of file, p99 < 5 ms",
    ),
    ("PostgreSQL + Redis limiter, 1 replica", "≥ 30% of file"),
];

/// quietbox-api answering `GET /v1/unsubscribe/candidates` on the file backend with the memory
/// limiter (the reference), on PostgreSQL (one replica; three replicas on one database, loaded
/// at once by three `wrk`s) and on PostgreSQL with the Redis limiter, interleaved per round.
/// The database is `QUIETBOX_TEST_DATABASE_URL` (a schema of its own, dropped afterwards);
/// Redis is a `redis-server` of its own on a free port.
fn scale_out(report: &mut Report, size: &Size, root: &Path, out: &Path) -> Result<()> {
    let wrk = ensure_wrk()?;
    let Ok(url) = std::env::var("QUIETBOX_TEST_DATABASE_URL") else {
        for (figure, goal) in SCALE_OUT_GOALS {
            report.rows.push(Row {
                figure: figure.to_owned(),
                ours: "skipped: QUIETBOX_TEST_DATABASE_URL is not set".to_owned(),
                reference: "—".to_owned(),
                ratio: "—".to_owned(),
                goal: goal.to_owned(),
                met: Some(false),
            });
        }
        return Ok(());
    };
    let schema = Schema::create(&url, &format!("qb_bench_{}", std::process::id()))?;
    let separator = if url.contains('?') { '&' } else { '?' };
    let database_url = format!("{url}{separator}options=-c%20search_path%3D{}", schema.name);
    let redis = RedisProcess::start(&out.join("logs/scale-redis.log"))?;
    let sample = root.join("data/sample");
    let (mbox, ics) = (
        sample.join("inbox.mbox").display().to_string(),
        sample.join("calendar.ics").display().to_string(),
    );
    let start = |name: &str, extra: &[(&str, &str)]| -> Result<Server> {
        let data = tempdir(out, &format!("scale-{name}"))?
            .display()
            .to_string();
        let mut env = vec![
            ("AUTH_MODE", "api_key"),
            ("AGENT_API_KEY", SCALE_OUT_KEY),
            ("DATA_DIR", data.as_str()),
            ("LOCAL_MBOX", mbox.as_str()),
            ("LOCAL_ICS", ics.as_str()),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("RATE_LIMIT_PER_MIN", "100000000"),
            ("RATE_LIMIT_BURST", "100000000"),
            ("RATE_LIMIT_READ_PER_MIN", "100000000"),
            ("RATE_LIMIT_READ_BURST", "100000000"),
        ];
        env.extend_from_slice(extra);
        let server = Server::start(
            &release_dir().join("quietbox-api"),
            &env,
            &out.join(format!("logs/scale-{name}.log")),
        )?;
        // The first call scans the sample (or reads the stored scan); the load measures after.
        let (status, _) = http_get(
            &server.addr,
            SCALE_OUT_PATH,
            &[("x-api-key", SCALE_OUT_KEY)],
        )?;
        if status != 200 {
            bail!("quietbox-api ({name}) answered {status} to {SCALE_OUT_PATH}");
        }
        Ok(server)
    };
    let postgres = [
        ("STATE_BACKEND", "postgres"),
        ("DATABASE_URL", database_url.as_str()),
    ];
    let redis_url = redis.url();
    let with_redis = [
        ("STATE_BACKEND", "postgres"),
        ("DATABASE_URL", database_url.as_str()),
        ("RATE_LIMIT_BACKEND", "redis"),
        ("REDIS_URL", redis_url.as_str()),
    ];
    let file = start("file", &[])?;
    let replicas = [
        start("pg-1", &postgres)?,
        start("pg-2", &postgres)?,
        start("pg-3", &postgres)?,
    ];
    let limited = start("pg-redis", &with_redis)?;

    // Shorter rounds than the single-server comparison: four configurations per round.
    let secs = (size.http_secs * 2 / 3).max(2);
    let mut figures: [Vec<(f64, f64)>; 4] = Default::default();
    let mut bad_responses = 0u64;
    for round in 0..size.rounds {
        for step in 0..4 {
            let which = (step + round) % 4;
            let servers: Vec<&Server> = match which {
                0 => vec![&file],
                1 => vec![&replicas[0]],
                2 => replicas.iter().collect(),
                _ => vec![&limited],
            };
            let results = wrk_at_once(&wrk, &servers, secs)?;
            bad_responses += results.iter().map(|r| r.non_2xx).sum::<u64>();
            let rps = results.iter().map(|r| r.requests_per_second).sum();
            let p99 = results.iter().map(|r| r.p99_ms).fold(0.0, f64::max);
            figures[which].push((rps, p99));
        }
    }
    let ok = bad_responses == 0;
    let file_rps: Vec<f64> = figures[0].iter().map(|f| f.0).collect();
    for (i, (figure, goal)) in SCALE_OUT_GOALS.into_iter().enumerate() {
        let ours = &figures[i + 1];
        let ratios: Vec<f64> = ours.iter().zip(&file_rps).map(|(o, f)| o.0 / f).collect();
        let ratio = median(&ratios);
        let rps = median(&ours.iter().map(|f| f.0).collect::<Vec<_>>());
        let p99 = median(&ours.iter().map(|f| f.1).collect::<Vec<_>>());
        let needed = if i == 2 { 0.3 } else { 0.5 };
        let latency_ok = i == 2 || p99 < 5.0;
        report.rows.push(Row {
            figure: figure.to_owned(),
            ours: format!("{rps:.0} req/s, p99 {p99:.2} ms"),
            reference: format!("{:.0} req/s file", median(&file_rps)),
            ratio: format!("{:.0}%", ratio * 100.0),
            goal: goal.to_owned(),
            met: Some(ok && ratio >= needed && latency_ok),
        });
    }
    report.notes.push(format!(
        "Scale-out: quietbox-api with AUTH_MODE=api_key and rate limits raised, the sample mbox, \
         on the file backend with the memory limiter (the reference), on PostgreSQL \
         (STATE_BACKEND=postgres, one schema; 1 replica, and 3 replicas each loaded by its own \
         `wrk -t1 -c{WRK_CONNECTIONS}` at once, figures summed, p99 the worst of the three) and \
         on PostgreSQL with RATE_LIMIT_BACKEND=redis (a redis-server of its own); {secs} s per \
         configuration, {} rounds rotating the order, medians of the rounds.{}",
        size.rounds,
        if ok {
            String::new()
        } else {
            format!(" {bad_responses} responses were not 2xx: goals marked not met.")
        }
    ));
    Ok(())
}

const SCALE_OUT_KEY: &str = "bench-scale-out-key-0123456789abcdef";
const SCALE_OUT_PATH: &str = "/v1/unsubscribe/candidates";

/// One `wrk` per server, all running at once.
fn wrk_at_once(wrk: &str, servers: &[&Server], secs: u32) -> Result<Vec<WrkResult>> {
    let children = servers
        .iter()
        .map(|server| {
            Command::new(wrk)
                .args([
                    "-t1",
                    &format!("-c{WRK_CONNECTIONS}"),
                    &format!("-d{secs}s"),
                    "--latency",
                    "-H",
                    &format!("x-api-key: {SCALE_OUT_KEY}"),
                    &format!("http://{}{SCALE_OUT_PATH}", server.addr),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("cannot start wrk")
        })
        .collect::<Result<Vec<_>>>()?;
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output()?;
            if !output.status.success() {
                bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
            }
            parse_wrk(&String::from_utf8_lossy(&output.stdout))
        })
        .collect()
}

/// The figures of one `wrk --latency` output.
fn parse_wrk(text: &str) -> Result<WrkResult> {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
            .with_context(|| format!("no {prefix:?} in wrk's output:\n{text}"))
    };
    Ok(WrkResult {
        requests_per_second: number_prefix(field("Requests/sec:")?)?,
        p99_ms: duration_ms(field("99%")?)?,
        non_2xx: match field("Non-2xx or 3xx responses:") {
            Ok(n) => number_prefix(n)? as u64,
            Err(_) => 0,
        },
    })
}

/// A schema of the benchmark database, made with `psql` and dropped when this is dropped.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn create(url: &str, name: &str) -> Result<Schema> {
        let schema = Schema {
            url: url.to_owned(),
            name: name.to_owned(),
        };
        schema.psql(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name};"
        ))?;
        Ok(schema)
    }

    fn psql(&self, sql: &str) -> Result<()> {
        output(Command::new("psql").args(["-q", "-v", "ON_ERROR_STOP=1", &self.url, "-c", sql]))
            .context("psql (the PostgreSQL client) is needed to make the benchmark's schema")?;
        Ok(())
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = self.psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// A `redis-server` on a free loopback port, without persistence, killed when dropped.
struct RedisProcess {
    child: Child,
    port: u16,
}

impl RedisProcess {
    fn start(log: &Path) -> Result<RedisProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(log_file(log)?)
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start redis-server")?;
        let redis = RedisProcess { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not listen on port {port} within 5 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Gmail scan

/// `crates/gmail/benches/scan.rs` against the fake Google with the quota and 50 ms per call.
/// The reference is the quota itself (250 units/s at 5 units per `messages.get`), not a
/// measurement, so one run suffices.
fn gmail(report: &mut Report, size: &Size, root: &Path, out: &Path, bench: &Path) -> Result<()> {
    let log = out.join("logs/gmail-scan.log");
    let text = output(
        Command::new(bench)
            .arg("--bench")
            .current_dir(root.join("crates/gmail"))
            .env("QB_BENCH_MESSAGES", size.gmail_messages.to_string()),
    )?;
    std::fs::write(&log, &text)?;
    let full = text
        .lines()
        .find_map(|l| l.strip_prefix("full scan: "))
        .with_context(|| format!("no full scan line in:\n{text}"))?;
    let rate = number_after(full, "= ")?;
    let failed = number_after(full, "; ")?;
    let quota_rate = 250.0 / 5.0;
    report.rows.push(Row {
        figure: format!("Gmail full scan, {} messages", size.gmail_messages),
        ours: format!("{rate:.1} msg/s ({failed:.0} failed)"),
        reference: format!("{quota_rate:.0} msg/s quota limit"),
        ratio: format!("{:.1}%", rate / quota_rate * 100.0),
        goal: "≥ 95% of quota".to_owned(),
        met: Some(failed == 0.0 && rate / quota_rate >= 0.95),
    });
    let incremental = text
        .lines()
        .find_map(|l| l.strip_prefix("incremental rescan after 50 new messages: "))
        .with_context(|| format!("no incremental line in:\n{text}"))?;
    let found = number_prefix(incremental)?;
    let calls = number_after(incremental, "messages, ")?;
    report.rows.push(Row {
        figure: "Gmail incremental rescan after 50 new".to_owned(),
        ours: format!("{calls:.0} calls ({found:.0} messages)"),
        reference: "60 calls".to_owned(),
        ratio: format!("{:.2}×", calls / 60.0),
        goal: "≤ 60 calls".to_owned(),
        met: Some(calls <= 60.0 && found >= 50.0),
    });
    report.notes.push(format!(
        "Gmail: `QB_BENCH_MESSAGES={} cargo bench -p quietbox-gmail --bench scan`: testkit's fake \
         Google, 50 ms per call, quietbox's quota bucket. Output: {}",
        size.gmail_messages,
        text.lines()
            .filter(|l| l.starts_with("full") || l.starts_with("incremental"))
            .collect::<Vec<_>>()
            .join(" / ")
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. Local scan

/// The local provider against Python's `mailbox` + `email` on the same generated mbox.
fn local(report: &mut Report, size: &Size, root: &Path, out: &Path) -> Result<()> {
    let mbox = out.join(format!("inbox-{}MiB.mbox", size.mbox_mib));
    generate_mbox(&mbox, size.mbox_mib << 20)?;
    let bytes = std::fs::metadata(&mbox)?.len();
    let ours_cmd = || {
        let mut c = Command::new(release_dir().join("examples/mbox_scan"));
        c.arg(&mbox);
        c
    };
    let python = std::env::var("QB_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let python_cmd = || {
        let mut c = Command::new(&python);
        c.arg(root.join("bench/python_mbox_headers.py")).arg(&mbox);
        c
    };
    // A warm-up pass puts the file in the page cache for both sides.
    let warm = scan_line(&output(&mut ours_cmd())?)?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut python_line = None;
    for round in 0..size.rounds {
        for which in alternate(round) {
            if which == 0 {
                ours.push(scan_line(&output(&mut ours_cmd())?)?.seconds);
            } else {
                let line = scan_line(&output(&mut python_cmd())?)?;
                theirs.push(line.seconds);
                python_line = Some(line);
            }
        }
    }
    let python_line = python_line.context("no Python run")?;
    let ratios: Vec<f64> = theirs.iter().zip(&ours).map(|(p, o)| p / o).collect();
    let ratio = median(&ratios);
    let same =
        python_line.messages == warm.messages && python_line.with_list_id == warm.with_list_id;
    let mib = bytes as f64 / f64::from(1 << 20);
    let ours_s = median(&ours);
    let theirs_s = median(&theirs);
    report.rows.push(Row {
        figure: format!("local mbox scan, {mib:.0} MiB, {} messages", warm.messages),
        ours: format!("{ours_s:.2} s ({:.0} MiB/s)", mib / ours_s),
        reference: format!("{theirs_s:.2} s Python mailbox+email"),
        ratio: format!("{ratio:.1}×"),
        goal: "≥ 20× Python".to_owned(),
        met: Some(same && ratio >= 20.0),
    });
    report.notes.push(format!(
        "Local scan: `target/release/examples/mbox_scan` (LocalMail::scan, the provider \
         quietbox-api runs) vs `{python} bench/python_mbox_headers.py` on {}, generated from \
         xtask's sample senders with bodies of 0–160 lines; {} rounds alternating, file in the \
         page cache. quietbox reads a file this large in one piece per core ({} here; \
         Python's `mailbox` has one thread). Messages / with List-Id: ours {} / {}, Python {} / \
         {}{}.",
        mbox.strip_prefix(root).unwrap_or(&mbox).display(),
        size.rounds,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        warm.messages,
        warm.with_list_id,
        python_line.messages,
        python_line.with_list_id,
        if same {
            ""
        } else {
            " — they differ, so the goal is marked not met"
        }
    ));
    Ok(())
}

struct ScanLine {
    messages: u64,
    seconds: f64,
    with_list_id: u64,
}

/// Parses `messages=<n> seconds=<s> with_list_id=<n>`.
fn scan_line(text: &str) -> Result<ScanLine> {
    let value = |key: &str| -> Result<f64> {
        let field = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .with_context(|| format!("no {key} in {text:?}"))?;
        number_prefix(field)
    };
    Ok(ScanLine {
        messages: value("messages=")? as u64,
        seconds: value("seconds=")?,
        with_list_id: value("with_list_id=")? as u64,
    })
}

/// Filler body lines: a newsletter's HTML, as Takeout stores it (quoted-printable, 76 columns).
const BODY_LINES: &[&str] = &[
    "<table role=3D\"presentation\" width=3D\"100%\" cellpadding=3D\"0\" cellspacing=3D=",
    "\"0\" border=3D\"0\"><tr><td style=3D\"padding:12px 24px;font-family:Arial,sans=",
    "-serif;font-size:15px;line-height:22px;color:#333333\">This week we picked th=",
    "e stories our readers opened most, a few offers ending soon, and one long re=",
    "ad for the weekend. <a href=3D\"https://news.example.com/r/abc123?utm_source=",
    "=3Dnewsletter&utm_medium=3Demail\" style=3D\"color:#1a73e8\">Read more</a></=",
    "td></tr></table>",
    "You are receiving this because you signed up at example.com. Manage your pre=",
];

/// Writes an mbox of at least `target` bytes from xtask's sample senders (the same header mix
/// as `data/sample/`), with bodies of 0–160 lines. Deterministic, and kept between runs.
fn generate_mbox(path: &Path, target: u64) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= target) {
        return Ok(());
    }
    eprintln!("   generating {} ({} MiB)", path.display(), target >> 20);
    let temp = path.with_extension("mbox.tmp");
    let mut file = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&temp)
            .with_context(|| format!("cannot create {}", temp.display()))?,
    );
    let mut rng = sample::Rng(0x0005_eed0_fb16_b0c5);
    let total: u64 = sample::SENDERS.iter().map(|s| s.volume).sum();
    let (mut written, mut n) = (0u64, 0u64);
    while written < target {
        let mut pick = rng.below(total);
        let sender = sample::SENDERS
            .iter()
            .find(|s| {
                if pick < s.volume {
                    return true;
                }
                pick -= s.volume;
                false
            })
            .unwrap_or(&sample::SENDERS[0]);
        let at = sample::END - 1 - rng.below(365 * 86_400) as i64;
        let mut message = sample::message(&mut rng, sender, n, at);
        for _ in 0..rng.below(161) {
            message.push_str(BODY_LINES[rng.below(BODY_LINES.len() as u64) as usize]);
            message.push('\n');
        }
        message.push('\n');
        file.write_all(message.as_bytes())?;
        written += message.len() as u64;
        n += 1;
    }
    file.flush()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5. Footprint

/// Each release binary started fresh: time from exec to the first 200 on `/health`, then its
/// resident memory after a second of idling. The bare hyper server is the reference.
fn footprint(report: &mut Report, size: &Size, root: &Path, out: &Path) -> Result<()> {
    let data = tempdir(out, "footprint")?;
    let sample = root.join("data/sample");
    let body = out.join("logs/health.json");
    std::fs::write(&body, "{\"status\":\"ok\"}")?;
    let env = [
        ("AGENT_API_KEY", "quietbox-bench-key-0123456789abcdef"),
        ("DATA_DIR", &data.display().to_string()),
        (
            "LOCAL_MBOX",
            &sample.join("inbox.mbox").display().to_string(),
        ),
        (
            "LOCAL_ICS",
            &sample.join("calendar.ics").display().to_string(),
        ),
        ("BIND_ADDR", "127.0.0.1:0"),
    ];
    let measure = |binary: &str, args: &[String], env: &[(&str, &str)]| -> Result<(f64, f64)> {
        let mut rss = Vec::new();
        let mut ready = Vec::new();
        for _ in 0..size.rounds {
            let start = Instant::now();
            let server = Server::start_with_args(
                &release_dir().join(binary),
                args,
                env,
                &out.join(format!("logs/footprint-{binary}.log")),
            )?;
            wait_for_health(&server.addr)?;
            ready.push(start.elapsed().as_secs_f64() * 1000.0);
            std::thread::sleep(Duration::from_secs(1));
            rss.push(rss_mib(server.child.id())?);
        }
        Ok((median(&rss), median(&ready)))
    };
    let (bare_rss, bare_ready) = measure("bare-server", &[body.display().to_string()], &[])?;
    for binary in ["quietbox-api", "quietbox-a2a", "quietbox-mcp"] {
        let (rss, ready) = measure(binary, &[], &env)?;
        report.rows.push(Row {
            figure: format!("{binary} idle RSS"),
            ours: format!("{rss:.1} MiB"),
            reference: format!("{bare_rss:.1} MiB bare hyper"),
            ratio: format!("{:.1}×", rss / bare_rss),
            goal: "< 20 MB".to_owned(),
            met: Some(rss * 1.048_576 < 20.0),
        });
        report.rows.push(Row {
            figure: format!("{binary} exec → 200 on /health"),
            ours: format!("{ready:.1} ms"),
            reference: format!("{bare_ready:.1} ms bare hyper"),
            ratio: format!("{:.1}×", ready / bare_ready),
            goal: "< 100 ms".to_owned(),
            met: Some(ready < 100.0),
        });
    }
    report.notes.push(format!(
        "Footprint: release binaries with defaults (api_key mode, JSON-file state, the sample \
         mbox), medians of {} fresh starts; time from spawn to the first 200 on /health, VmRSS \
         from /proc after one idle second.",
        size.rounds
    ));
    Ok(())
}

fn wait_for_health(addr: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((200, _)) = http_get(addr, "/health", &[]) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{addr} did not answer 200 on /health within 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `VmRSS` of a process, in MiB.
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS")?;
    Ok(number_prefix(kib.trim())? / 1024.0)
}

// ---------------------------------------------------------------------------------------------
// Processes, HTTP and numbers

/// A server process, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(binary: &Path, env: &[(&str, &str)], log: &Path) -> Result<Server> {
        Server::start_with_args(binary, &[], env, log)
    }

    /// Starts `binary` with exactly `env` and waits for its `listening on <addr>` line.
    fn start_with_args(
        binary: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Server> {
        let mut child = Command::new(binary)
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log_file(log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} printed {line:?}, not its address; see {}",
                binary.display(),
                log.display()
            );
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        Ok(Server { child, addr })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP/1.0 GET (so the answer is never chunked): the status and the body.
fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, response[split + 4..].to_vec()))
}

/// Runs a command to completion, returning its stdout; fails with its stderr.
fn output(command: &mut Command) -> Result<String> {
    let result = command
        .output()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    if !result.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            command.get_program(),
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&result.stdout).into_owned())
}

fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// A fresh, empty directory under `target/bench/`.
fn tempdir(out: &Path, name: &str) -> Result<PathBuf> {
    let dir = out.join(format!("data-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The two sides' order in a round: A then B on even rounds, B then A on odd ones.
fn alternate(round: usize) -> [u8; 2] {
    if round.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The number a string starts with (`"12.5ms"` → 12.5).
fn number_prefix(text: &str) -> Result<f64> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(text.len());
    text[..end]
        .parse()
        .with_context(|| format!("not a number: {text:?}"))
}

/// The number right after the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> Result<f64> {
    let (_, rest) = text
        .split_once(marker)
        .with_context(|| format!("no {marker:?} in {text:?}"))?;
    number_prefix(rest)
}

fn render(report: &Report, size: &Size, built: Duration, took: Duration) -> String {
    let mut text = String::new();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let _ = writeln!(text, "# quietbox benchmarks\n");
    let _ = writeln!(
        text,
        "`cargo xtask bench{}` — {} size, commit {commit}, {cpus} CPUs; {:.0} s of benchmarks \
         after {:.0} s of builds.\n",
        if size.mbox_mib == QUICK.mbox_mib {
            " --quick"
        } else {
            ""
        },
        size.name,
        took.as_secs_f64(),
        built.as_secs_f64()
    );
    let _ = writeln!(text, "| figure | ours | reference | ratio | goal | met? |");
    let _ = writeln!(text, "|---|---|---|---|---|---|");
    for row in &report.rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "**not measured**",
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {met} |",
            row.figure, row.ours, row.reference, row.ratio, row.goal
        );
    }
    let met = report.rows.iter().filter(|r| r.met == Some(true)).count();
    let _ = writeln!(text, "\n{met} of {} goals met.\n", report.rows.len());
    for note in &report.notes {
        let _ = writeln!(text, "- {note}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_durations_are_read_in_milliseconds() {
        assert_eq!(duration_ms("812.00us").unwrap(), 0.812);
        assert_eq!(duration_ms("1.25ms").unwrap(), 1.25);
        assert_eq!(duration_ms("2.00s").unwrap(), 2000.0);
        assert_eq!(duration_ms("1.50m").unwrap(), 90_000.0);
        assert!(duration_ms("3.0parsecs").is_err());
        assert!(duration_ms("soon").is_err());
        assert!(duration_ms("").is_err());
    }

    #[test]
    fn scan_lines_of_both_sides_are_read() {
        let line = scan_line("messages=1200 seconds=0.5310 with_list_id=800\n").unwrap();
        assert_eq!(
            (line.messages, line.seconds, line.with_list_id),
            (1200, 0.531, 800)
        );
        assert!(scan_line("messages=12").is_err());
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn criterion_estimates_give_the_median() {
        let dir = std::env::temp_dir().join(format!("qb-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("new")).unwrap();
        std::fs::write(
            dir.join("new/estimates.json"),
            r#"{"mean":{"point_estimate":9.0},"median":{"confidence_interval":{"lower_bound":1.0},"point_estimate":1234.5,"standard_error":2.0}}"#,
        )
        .unwrap();
        assert_eq!(criterion_median(&dir).unwrap(), 1234.5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_generated_mbox_reaches_its_size_and_splits_into_messages() {
        let dir = std::env::temp_dir().join(format!("qb-bench-mbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.mbox");
        generate_mbox(&path, 200_000).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() >= 200_000);
        let separators = text.lines().filter(|l| l.starts_with("From ")).count();
        let ids = text
            .lines()
            .filter(|l| l.starts_with("Message-ID: "))
            .count();
        assert_eq!(separators, ids);
        assert!(separators > 10, "{separators}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
