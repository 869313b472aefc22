//! `rpc.server.call.duration`: a tower layer around the gRPC server that records each
//! call's duration in seconds, by method and status code (OpenTelemetry RPC semantic
//! conventions). A server-streaming call (Apply, Rollback, Watch) is measured to its
//! response headers, when the stream starts; its events are the rollout's own metrics.
//!
//! Every label has a bounded set of values (issue 25, finding 1): `rpc.method` is one of
//! the methods the served descriptors declare, or `_OTHER`, whatever the caller sent and
//! whether or not the call got past authentication; `rpc.response.status_code` is one of
//! gRPC's 17 codes, or `_OTHER`. A request's path is never copied into a label.

use std::{
    collections::HashSet,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use opentelemetry::{
    KeyValue,
    metrics::{Histogram, Meter},
};

/// Wraps a service with [`CallDuration`].
#[derive(Clone)]
pub(crate) struct CallDurationLayer {
    histogram: Histogram<f64>,
}

impl CallDurationLayer {
    /// The layer, its histogram made from `meter`.
    pub(crate) fn new(meter: &Meter) -> Self {
        Self {
            histogram: super::metrics::seconds(
                meter,
                "rpc.server.call.duration",
                "Duration of a gRPC call to its response headers",
            ),
        }
    }
}

impl<S> tower::Layer<S> for CallDurationLayer {
    type Service = CallDuration<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallDuration {
            inner,
            histogram: self.histogram.clone(),
        }
    }
}

/// Records each call's duration.
#[derive(Clone)]
pub(crate) struct CallDuration<S> {
    inner: S,
    histogram: Histogram<f64>,
}

/// The label of every method the daemon does not serve.
const OTHER: &str = "_OTHER";

/// Reflection's one method, in both versions served: its descriptor is tonic-reflection's own.
const REFLECTION: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The methods a daemon serves, as `package.Service/Method`: the only values `rpc.method`
/// takes besides `_OTHER`.
pub(crate) struct KnownMethods(HashSet<Arc<str>>);

impl KnownMethods {
    /// The methods of the encoded descriptor sets `sets` (`FileDescriptorSet` bytes), and
    /// reflection's.
    pub(crate) fn from_descriptor_sets(sets: &[&[u8]]) -> Self {
        let mut known: HashSet<Arc<str>> = REFLECTION.into_iter().map(Arc::from).collect();
        for set in sets {
            known.extend(methods(set).into_iter().map(Arc::from));
        }
        Self(known)
    }

    /// The `rpc.method` label of request path `path`: the served method it names (shared,
    /// not copied from the request), or `_OTHER`.
    fn label(&self, path: &str) -> Arc<str> {
        let method = path.strip_prefix('/').unwrap_or(path);
        self.0
            .get(method)
            .cloned()
            .unwrap_or_else(|| Arc::from(OTHER))
    }
}

/// The served methods, declared once by the server ([`serve_methods`]).
static KNOWN_METHODS: OnceLock<KnownMethods> = OnceLock::new();

/// Declares the methods this process serves, from their encoded descriptor sets (the
/// server passes them: only it names the protobuf crates). The first call wins; before it,
/// every path is `_OTHER`.
pub(crate) fn serve_methods(sets: &[&[u8]]) {
    KNOWN_METHODS.get_or_init(|| KnownMethods::from_descriptor_sets(sets));
}

/// `package.Service/Method` of each method of encoded descriptor set `set`.
fn methods(set: &[u8]) -> Vec<String> {
    use prost::Message as _;
    let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                let service = match package {
                    "" => service.name().to_owned(),
                    p => format!("{p}.{}", service.name()),
                };
                out.push(format!("{service}/{}", method.name()));
            }
        }
    }
    out
}

/// The `rpc.method` label of request path `path`: the served method it names, or `_OTHER`
/// ([`serve_methods`] says which are served).
pub(crate) fn method_label(path: &str) -> Arc<str> {
    match KNOWN_METHODS.get() {
        Some(known) => known.label(path),
        None => Arc::from(OTHER),
    }
}

/// The `rpc.response.status_code` label of a `grpc-status` value: `0` to `16`, else `_OTHER`.
fn status_label(value: Option<&str>) -> String {
    match value.map(str::parse::<u8>) {
        None => "0".to_owned(),
        Some(Ok(code)) if code <= 16 => code.to_string(),
        Some(_) => OTHER.to_owned(),
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for CallDuration<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let start = Instant::now();
        let call = self.inner.call(request);
        let histogram = self.histogram.clone();
        Box::pin(async move {
            let response = call.await;
            // A status in the headers is a trailers-only answer (an error, or UNIMPLEMENTED);
            // none means the call went on (OK so far).
            let code = match &response {
                Ok(r) => status_label(
                    r.headers()
                        .get("grpc-status")
                        .map(|v| v.to_str().unwrap_or(OTHER)),
                ),
                Err(_) => "13".to_owned(),
            };
            histogram.record(
                start.elapsed().as_secs_f64(),
                &[
                    KeyValue::new("rpc.system", "grpc"),
                    KeyValue::new("rpc.method", method.to_string()),
                    KeyValue::new("rpc.response.status_code", code),
                ],
            );
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_are_labels() {
        use prost::Message as _;
        use prost_types::{
            FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
        };
        let method = |name: &str| MethodDescriptorProto {
            name: Some(name.into()),
            ..Default::default()
        };
        let set = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                package: Some("avocet.v1".into()),
                service: vec![ServiceDescriptorProto {
                    name: Some("Migrator".into()),
                    method: vec![method("Plan"), method("Apply")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let known = KnownMethods::from_descriptor_sets(&[&set]);
        let method_label = |path: &str| known.label(path);
        assert_eq!(
            &*method_label("/avocet.v1.Migrator/Plan"),
            "avocet.v1.Migrator/Plan"
        );
        for reflection in REFLECTION {
            assert_eq!(&*method_label(&format!("/{reflection}")), reflection);
        }
        let invented = format!("/avocet.v1.Migrator/000123{}", "X".repeat(12_000));
        assert_eq!(&*method_label(&invented), OTHER);
        assert_eq!(&*method_label("/avocet.v1.Migrator/plan"), OTHER);
        assert_eq!(status_label(Some("16")), "16");
        assert_eq!(status_label(Some("99999")), OTHER);
        assert_eq!(status_label(None), "0");
    }
}
