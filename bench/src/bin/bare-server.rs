//! The reference of the HTTP benchmark: a bare hyper HTTP/1.1 server on tokio's multi-thread
//! runtime (as quietbox-api uses) answering every request with the same fixed body — no routing,
//! no auth, no middleware. Prints `listening on <addr>` like the quietbox binaries.
//!
//! Run with: `cargo run --release -p quietbox-bench --bin bare-server -- <body.json> [addr]`

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let body_file = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: bare-server <body file> [addr]"))?;
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let body = Bytes::from(std::fs::read(&body_file)?);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(body))
                            .unwrap_or_default(),
                    )
                }
            });
            // A client closing its connection mid-request is normal under load.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
