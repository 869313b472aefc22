//! The admin HTTP listener from a test: plain GETs, and `/metrics` parsed as the
//! Prometheus text exposition format (`prometheus-parse`).

use std::net::SocketAddr;

use anyhow::{Context, ensure};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

/// A parsed `/metrics` answer.
pub use prometheus_parse::Scrape;

/// GETs `path` from the admin listener at `addr`: the status code and the body as text.
///
/// # Errors
/// When the listener does not answer or the body is not UTF-8.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = format!("http://{addr}{path}").parse()?;
    let response = client
        .get(uri)
        .await
        .with_context(|| format!("GET {path}"))?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(body.to_vec())?))
}

/// GETs `/metrics` and parses it; fails unless the answer is 200 in the text format.
///
/// # Errors
/// When the listener does not answer, answers another status, or the text does not parse.
pub async fn scrape(addr: SocketAddr) -> anyhow::Result<Scrape> {
    let (status, body) = get(addr, "/metrics").await?;
    ensure!(status == 200, "/metrics answered {status}: {body}");
    Ok(Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))?)
}
