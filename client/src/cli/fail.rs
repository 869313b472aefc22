//! How a failed command is shown: `error: …` on stderr in text (the daemon's reason code in
//! brackets after its message), and under `--output json` one object on stderr,
//! `{"error": {"code", "reason", "message", "fleet", "tenant", "version", "rollout"}}`. The
//! exit status is the caller's, the same for both.

use avocet_client::{ClientError, Rejection};
use serde_json::{Value, json};

use super::Output;

/// A failure the command line words itself (a stream that broke off), keeping the daemon's
/// status for `--output json`.
#[derive(Debug, thiserror::Error)]
#[error("{sentence}")]
pub(crate) struct Explained {
    /// What the command line says.
    pub(crate) sentence: String,
    /// The status it explains.
    pub(crate) rejection: Rejection,
}

/// Prints `e` on stderr as `out` asks.
pub(crate) fn show(e: &anyhow::Error, out: Output) {
    match out {
        Output::Text => eprintln!("error: {}", super::one_line(e)),
        Output::Json => eprintln!("{}", document(e)),
    }
}

/// The JSON document of `e`: `code` is the gRPC code's canonical name (`NOT_FOUND`), or
/// `UNAVAILABLE` when the daemon could not be reached, or null for a failure of the
/// command line itself; `reason` is the daemon's reason code (docs/errors.md) or null;
/// `fleet`, `tenant`, `version` and `rollout` are what the daemon's error names, or null.
pub(crate) fn document(e: &anyhow::Error) -> Value {
    let explained = e.downcast_ref::<Explained>();
    let client = e.chain().find_map(|c| c.downcast_ref::<ClientError>());
    let rejection = explained
        .map(|x| &x.rejection)
        .or_else(|| client.and_then(ClientError::rejection));
    let code = match (rejection, client) {
        (Some(r), _) => Some(r.code_name()),
        (None, Some(ClientError::Connect { .. })) => Some("UNAVAILABLE"),
        _ => None,
    };
    let message = match (explained, rejection) {
        (Some(x), _) => x.sentence.clone(),
        (None, Some(r)) => r.message().to_owned(),
        (None, None) => super::one_line(e),
    };
    json!({
        "error": {
            "code": code,
            "reason": rejection.and_then(Rejection::reason),
            "message": message,
            "fleet": rejection.and_then(Rejection::fleet),
            "tenant": rejection.and_then(Rejection::tenant),
            "version": rejection.and_then(Rejection::version),
            "rollout": rejection.and_then(Rejection::rollout),
        }
    })
}
