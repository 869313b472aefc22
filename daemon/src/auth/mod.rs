//! Who is calling, and may they: every `avocet.v1` call passes the [`Gate`] (an
//! interceptor), which turns a bearer token or a client certificate into an [`Identity`];
//! each handler then asks the identity whether its role and fleets allow the call.
//! `grpc.health.v1` and reflection stay open.
//!
//! | file | what |
//! | --- | --- |
//! | `error.rs` | [`AuthError`]: why a call is refused, with its kind and reason code |
//! | `identity.rs` | [`Identity`]: a name, a role and the fleets it may touch |
//! | `rpc.rs` | [`Rpc`]: every call that needs a role, and the least role each allows |
//! | `gate.rs` | [`Gate`]: tokens (SHA-256, compared in constant time) and certificate subjects |
//! | `tls.rs` | the server's TLS configuration from `[tls]` |
//! | `failures.rs` | failed authentication: logged at a bounded rate, counted, a guessing peer slowed then locked out |
//! | `slowdown.rs` | the layer that makes a failing peer's calls wait before the gate |

mod error;
mod failures;
mod gate;
mod identity;
mod rpc;
mod slowdown;
mod tls;

pub(crate) use error::{AuthError, Refusal};
pub(crate) use gate::Gate;
pub(crate) use identity::Identity;
pub use rpc::Rpc;
pub use tls::TlsError;
pub(crate) use tls::server_tls;
