//! The smoke checks' HTTP client: `ureq`, blocking, so xtask needs no async runtime. It talks
//! to loopback servers that quietbox itself started (plain `http://host:port`, no proxy, no
//! redirects); an error status is a [`Response`] like any other, for the checks to judge.
//! Server-sent events are read only until the first JSON-RPC answer, since a stream may stay
//! open after it.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use anyhow::{Context, Result};

/// A response: status, headers (names lower-cased) and body as text.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body; for an event stream, the events up to the first answer.
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

/// Whether an event stream already holds a JSON-RPC answer (a message with `result` or `error`).
fn has_answer(text: &str) -> bool {
    sse_messages(text)
        .iter()
        .any(|m| m.get("result").is_some() || m.get("error").is_some())
}

/// Sends `method url` with `headers` and an optional body; `timeout` bounds the connect, the
/// response's head and its body.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .user_agent("quietbox-xtask")
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_recv_body(Some(timeout))
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = match body {
        Some(body) => agent.run(builder.body(body)?),
        None => agent.run(builder.body(ureq::SendBody::none())?),
    }
    .with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let event_stream = response
        .headers()
        .get("content-type")
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let mut body = response.into_body();
    let text = if event_stream {
        read_events(BufReader::new(body.as_reader()))
    } else {
        body.read_to_string().map_err(anyhow::Error::from)
    }
    .with_context(|| format!("{method} {url}: reading the body"))?;
    Ok(Response {
        status,
        headers,
        body: text,
    })
}

/// Reads events up to the first one that completes a JSON-RPC answer, or to the end.
fn read_events(mut reader: impl BufRead) -> Result<String> {
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
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-connection server on loopback that answers `raw` to the first request and keeps
    /// the connection open for `linger` afterwards; returns its URL.
    fn serve(raw: &'static str, linger: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/path", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            stream.write_all(raw.as_bytes()).unwrap();
            stream.flush().unwrap();
            std::thread::sleep(linger);
        });
        url
    }

    fn get(url: &str) -> Result<Response> {
        request("GET", url, &[("X-Test", "1")], None, Duration::from_secs(5))
    }

    #[test]
    fn a_response_with_content_length_is_read_whole() {
        let url = serve(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
            Duration::ZERO,
        );
        let response = get(&url).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.json().unwrap()["ok"], true);
    }

    #[test]
    fn chunked_bodies_are_joined_and_an_error_status_is_a_response() {
        let url = serve(
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
            Duration::ZERO,
        );
        let response = get(&url).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.body, "{\"a\":1}");
    }

    #[test]
    fn an_event_stream_stops_at_the_first_json_rpc_answer() {
        // The stream stays open for a minute after the answer; reading must not wait for it.
        let url = serve(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n2c\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n\r\n",
            Duration::from_secs(60),
        );
        let started = std::time::Instant::now();
        let response = get(&url).unwrap();
        assert_eq!(response.json().unwrap()["id"], 2);
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn a_garbled_status_line_or_no_server_is_an_error() {
        let url = serve("hello\r\n\r\n", Duration::ZERO);
        assert!(get(&url).is_err());
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        assert!(get(&url).is_err());
    }
}
