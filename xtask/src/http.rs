//! A minimal HTTP/1.1 client over `std::net::TcpStream` for the smoke checks: one request per
//! connection (`Connection: close`), bodies by `Content-Length`, chunked or to the end, and
//! server-sent events read only until the first JSON-RPC answer.
//!
//! It exists so that xtask needs no async runtime and no HTTP crate: the canary talks to
//! loopback servers that quietbox itself started, plain `http://host:port` only.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A response: status, headers (names lower-cased) and body as text.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from chunks; for an event stream, the events up to the first answer.
    pub body: String,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; for an event stream, the last `data:` line that is JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        if let Ok(value) = serde_json::from_str(&self.body) {
            return Ok(value);
        }
        sse_messages(&self.body)
            .into_iter()
            .next_back()
            .with_context(|| format!("body is not JSON: {:.200}", self.body))
    }
}

/// The JSON messages of an event stream's `data:` lines.
fn sse_messages(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect()
}

/// Sends `method url` with `headers` and an optional body; waits at most `timeout` for each read.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream =
        TcpStream::connect(authority).with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: quietbox-xtask\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()?;
    read_response(BufReader::new(stream)).with_context(|| format!("{method} {url}"))
}

fn read_response(mut reader: impl BufRead) -> Result<Response> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP status line: {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("connection closed inside the headers");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let event_stream = find("content-type").is_some_and(|t| t.starts_with("text/event-stream"));
    let chunked = find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        read_chunked(&mut reader, event_stream)?
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().context("bad Content-Length")?;
        let mut bytes = vec![0; length];
        reader.read_exact(&mut bytes)?;
        String::from_utf8_lossy(&bytes).into_owned()
    } else if event_stream {
        read_events(&mut reader)?
    } else {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Whether an event stream already holds a JSON-RPC answer (a message with `result` or `error`):
/// a stream may stay open after it, so reading stops there.
fn has_answer(text: &str) -> bool {
    sse_messages(text)
        .iter()
        .any(|m| m.get("result").is_some() || m.get("error").is_some())
}

fn read_chunked(reader: &mut impl BufRead, event_stream: bool) -> Result<String> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line)? == 0 {
            break;
        }
        let size_text = size_line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_line:?}"))?;
        if size == 0 {
            break;
        }
        let mut chunk = vec![0; size];
        reader.read_exact(&mut chunk)?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
        body.extend_from_slice(&chunk);
        if event_stream && has_answer(&String::from_utf8_lossy(&body)) {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn read_events(reader: &mut impl BufRead) -> Result<String> {
    let mut body = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        body.push_str(&line);
        if line.trim().is_empty() && has_answer(&body) {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Response {
        read_response(BufReader::new(raw.as_bytes())).unwrap()
    }

    #[test]
    fn a_response_with_content_length_is_read_whole() {
        let response = parse(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}tail",
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.json().unwrap()["ok"], true);
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let response = parse(
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
        );
        assert_eq!(response.status, 404);
        assert_eq!(response.body, "{\"a\":1}");
    }

    #[test]
    fn an_event_stream_stops_at_the_first_json_rpc_answer() {
        // The second chunk would never arrive on a stream kept open; reading must not wait for it.
        let event = "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n";
        let response = parse(&format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{event}\r\nzz\r\n",
            event.len()
        ));
        assert_eq!(response.json().unwrap()["id"], 2);
    }

    #[test]
    fn a_garbled_status_line_is_an_error() {
        assert!(read_response(BufReader::new("hello\r\n\r\n".as_bytes())).is_err());
    }
}
