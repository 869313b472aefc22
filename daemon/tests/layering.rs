//! The daemon's layering, checked from the source: each module imports only the modules
//! below it in docs/architecture.md, `model` imports nothing of the crate, only the API
//! edge speaks protobuf, and only the API's error mapping makes a `tonic::Status`. A wrong
//! import fails this test with the file, the line and the rule.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// Each top-level module and the crate modules it may import. `lib.rs` and `main.rs` wire
/// everything and are not checked.
const RULES: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("catalog", &["model"]),
    ("plan", &["model"]),
    ("dialect", &["model"]),
    ("config", &["model"]),
    ("auth", &["model", "config"]),
    ("telemetry", &["model", "config"]),
    ("store", &["model"]),
    ("fleet", &["model", "catalog", "dialect", "config"]),
    (
        "migrate",
        &["model", "plan", "dialect", "fleet", "telemetry"],
    ),
    (
        "backup",
        &[
            "model",
            "dialect",
            "config",
            "fleet",
            "migrate",
            "store",
            "telemetry",
        ],
    ),
    (
        "rollout",
        &[
            "model",
            "plan",
            "fleet",
            "migrate",
            "backup",
            "store",
            "telemetry",
        ],
    ),
    (
        "engine",
        &[
            "model", "plan", "dialect", "config", "fleet", "migrate", "backup", "rollout", "store",
        ],
    ),
    ("api", &["model", "engine", "auth"]),
    ("admin", &["model", "engine", "telemetry"]),
    (
        "server",
        &[
            "admin",
            "api",
            "auth",
            "backup",
            "catalog",
            "config",
            "engine",
            "fleet",
            "store",
            "telemetry",
        ],
    ),
];

/// The only modules that may name the generated protobuf crate.
const PROTO_EDGE: &[&str] = &["api", "server"];

/// The one file that may make a `tonic::Status` (`From<ApiError> for Status`): every other
/// failure reaches the wire through it, with its reason code (docs/architecture.md).
const STATUS_MAKER: &str = "api/error.rs";

/// `tonic::Status`'s constructors, and `tonic_types::StatusExt`'s.
const STATUS_CONSTRUCTORS: &[&str] = &[
    "new",
    "with_details",
    "with_metadata",
    "with_details_and_metadata",
    "with_error_details",
    "with_error_details_vec",
    "with_error_details_and_metadata",
    "with_error_details_vec_and_metadata",
    "from_error",
    "ok",
    "cancelled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
];

/// Every place outside test code that names a constructor of `Status` (`Status::new`,
/// `tonic::Status::permission_denied`, `Status::unauthenticated` passed as a function).
struct StatusMakers {
    found: Vec<(String, usize)>,
}

impl<'ast> Visit<'ast> for StatusMakers {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if let [.., ty, f] = segments.as_slice()
            && ty == "Status"
            && STATUS_CONSTRUCTORS.contains(&f.as_str())
        {
            let line = path.segments[0].ident.span().start().line;
            self.found.push((format!("Status::{f}"), line));
        }
        visit::visit_path(self, path);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test_only(&item.attrs) {
            visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test_only(&item.attrs) {
            visit::visit_item_fn(self, item);
        }
    }
}

/// Every `tonic::Status` that `source` (the text of `relative`) makes outside
/// [`STATUS_MAKER`].
fn status_makers(relative: &Path, source: &str) -> Vec<Violation> {
    if relative == Path::new(STATUS_MAKER) {
        return Vec::new();
    }
    let file = syn::parse_file(source).unwrap_or_else(|e| panic!("{}: {e}", relative.display()));
    let mut makers = StatusMakers { found: Vec::new() };
    makers.visit_file(&file);
    makers
        .found
        .into_iter()
        .map(|(call, line)| Violation {
            file: relative.display().to_string(),
            line,
            message: format!(
                "{call} makes a tonic::Status outside {STATUS_MAKER}: return a typed error \
                 that ApiError's From maps"
            ),
        })
        .collect()
}

/// One import that breaks a rule.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    message: String,
}

/// Collects the crate modules and external crates one file refers to.
struct Imports {
    /// The file's module path, e.g. `["rollout", "tenant"]`, plus inline modules entered.
    module: Vec<String>,
    /// (top-level module or crate, line).
    found: Vec<(String, usize)>,
}

impl Imports {
    fn resolve(&mut self, segments: &[String], line: usize) {
        let Some(first) = segments.first() else {
            return;
        };
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "super" | "self" => self.module.clone(),
            "avocet_proto" => {
                self.found.push(("avocet_proto".into(), line));
                return;
            }
            _ => return,
        };
        let mut rest = segments;
        if first == "crate" {
            rest = &segments[1..];
        }
        for s in rest {
            match s.as_str() {
                "super" => {
                    base.pop();
                }
                "self" => {}
                name => {
                    base.push(name.to_owned());
                    break;
                }
            }
        }
        if let Some(top) = base.first() {
            self.found.push((top.clone(), line));
        }
    }

    /// `crate::x` and `$crate::x` inside macro definitions and invocations.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Group(g) => self.scan_tokens(g.stream()),
                TokenTree::Ident(id) if id == "crate" || id == "avocet_proto" => {
                    let name = match (trees.get(i + 1), trees.get(i + 2), trees.get(i + 3)) {
                        _ if id == "avocet_proto" => Some("avocet_proto".to_owned()),
                        (
                            Some(TokenTree::Punct(a)),
                            Some(TokenTree::Punct(b)),
                            Some(TokenTree::Ident(m)),
                        ) if a.as_char() == ':' && b.as_char() == ':' => Some(m.to_string()),
                        _ => None,
                    };
                    if let Some(name) = name {
                        self.found.push((name, id.span().start().line));
                    }
                }
                _ => {}
            }
        }
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            out.push(path);
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            out.push(path);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_paths(t, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Imports {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        use_paths(&item.tree, &mut Vec::new(), &mut paths);
        let line = item.use_token.span.start().line;
        for p in paths {
            self.resolve(&p, line);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            let line = path.segments[0].ident.span().start().line;
            self.resolve(&segments, line);
        }
        visit::visit_path(self, path);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if is_test_only(&item.attrs) {
            return;
        }
        self.module.push(item.ident.to_string());
        visit::visit_item_mod(self, item);
        self.module.pop();
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test_only(&item.attrs) {
            visit::visit_item_fn(self, item);
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.scan_tokens(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }
}

/// The module path of a file under `src/`: `rollout/tenant.rs` → `[rollout, tenant]`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every rule `source` (the text of `relative`, a path under `src/`) breaks.
fn check(relative: &Path, source: &str) -> Vec<Violation> {
    let module = module_of(relative);
    let Some(top) = module.first().cloned() else {
        return Vec::new();
    };
    let Some((_, allowed)) = RULES.iter().find(|(m, _)| *m == top) else {
        return vec![Violation {
            file: relative.display().to_string(),
            line: 0,
            message: format!("module {top} has no layering rule: add it to RULES"),
        }];
    };
    let file = syn::parse_file(source).unwrap_or_else(|e| panic!("{}: {e}", relative.display()));
    let mut imports = Imports {
        module,
        found: Vec::new(),
    };
    imports.visit_file(&file);
    let mut violations = BTreeSet::new();
    for (target, line) in imports.found {
        let message = if target == "avocet_proto" {
            (!PROTO_EDGE.contains(&top.as_str()))
                .then(|| format!("{top} must not import the protobuf crate (only {PROTO_EDGE:?})"))
        } else if target == top || !RULES.iter().any(|(m, _)| *m == target) {
            None
        } else {
            (!allowed.contains(&target.as_str()))
                .then(|| format!("{top} must not import {target} (allowed: {allowed:?})"))
        };
        if let Some(message) = message {
            violations.insert(Violation {
                file: relative.display().to_string(),
                line,
                message,
            });
        }
    }
    violations.into_iter().collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut checked = 0;
    for path in &files {
        let relative = path.strip_prefix(&src).unwrap();
        if relative.components().count() == 1
            && matches!(relative.to_str(), Some("lib.rs" | "main.rs"))
        {
            continue;
        }
        // Test modules in their own files (`#[cfg(test)] mod tests;`, as `tests.rs` or a
        // `tests/` directory) may use fixtures.
        if relative.file_name().is_some_and(|f| f == "tests.rs")
            || relative.components().any(|c| c.as_os_str() == "tests")
        {
            continue;
        }
        let source = std::fs::read_to_string(path).unwrap();
        violations.extend(check(relative, &source));
        violations.extend(status_makers(relative, &source));
        checked += 1;
    }
    assert!(
        checked >= 30,
        "only {checked} files found under {}",
        src.display()
    );
    let report: Vec<String> = violations
        .iter()
        .map(|v| format!("{}:{}: {}", v.file, v.line, v.message))
        .collect();
    assert!(report.is_empty(), "layering broken:\n{}", report.join("\n"));
}

#[test]
fn the_checker_catches_wrong_imports_in_every_form() {
    let wrong = [
        (
            "plan/mod.rs",
            "use crate::dialect::DbError;",
            "plan must not import dialect",
        ),
        (
            "catalog/load.rs",
            "use crate::{model::Script, dialect::Session};",
            "catalog must not import dialect",
        ),
        (
            "api/fleet.rs",
            "fn f() { crate::dialect::read_history(); }",
            "api must not import dialect",
        ),
        (
            "model/plan.rs",
            "use super::super::plan::pending;",
            "model must not import plan",
        ),
        (
            "model/event.rs",
            "use crate::fleet::Tenant as T;",
            "model must not import fleet",
        ),
        (
            "rollout/log.rs",
            "use avocet_proto::v1::RolloutEvent;",
            "rollout must not import the protobuf crate",
        ),
        (
            "dialect/history.rs",
            "macro_rules! m { () => { $crate::rollout::x() }; }",
            "dialect must not import rollout",
        ),
        (
            "rollout/job.rs",
            "use crate::dialect::Session;",
            "rollout must not import dialect",
        ),
        (
            "migrate/tenant.rs",
            "use crate::store::Store;",
            "migrate must not import store",
        ),
        (
            "catalog/mod.rs",
            "fn f() -> avocet_proto::v1::Direction { todo!() }",
            "catalog must not import the protobuf crate",
        ),
    ];
    for (file, source, expected) in wrong {
        let found = check(Path::new(file), source);
        assert!(
            found.iter().any(|v| v.message.starts_with(expected)),
            "{file}: {source:?} gave {found:?}"
        );
    }
    let right = [
        (
            "rollout/tenant.rs",
            "use super::step::run_step; use crate::{model::Step, plan};",
        ),
        (
            "plan/mod.rs",
            "use crate::model::Plan; #[cfg(test)] mod tests { use crate::catalog::x; }",
        ),
        (
            "api/send.rs",
            "use avocet_proto::v1 as pb; use crate::engine::FleetPlan;",
        ),
    ];
    for (file, source) in right {
        assert_eq!(
            check(Path::new(file), source),
            Vec::new(),
            "{file}: {source:?}"
        );
    }
}

#[test]
fn the_checker_catches_a_status_made_outside_the_mapping() {
    let wrong = [
        (
            "auth/identity.rs",
            "fn f() -> Result<(), Status> { Err(Status::permission_denied(\"no\")) }",
            "Status::permission_denied",
        ),
        (
            "auth/gate.rs",
            "fn f(e: String) -> tonic::Status { e.map_err(tonic::Status::unauthenticated) }",
            "Status::unauthenticated",
        ),
        (
            "api/fleet.rs",
            "fn f() -> Status { Status::with_error_details(Code::Internal, \"x\", d) }",
            "Status::with_error_details",
        ),
        (
            "server.rs",
            "fn f() -> Status { Status::new(Code::Internal, \"x\") }",
            "Status::new",
        ),
    ];
    for (file, source, expected) in wrong {
        let found = status_makers(Path::new(file), source);
        assert!(
            found.iter().any(|v| v.message.starts_with(expected)),
            "{file}: {source:?} gave {found:?}"
        );
    }
    let right = [
        (
            "api/error.rs",
            "fn f() -> Status { Status::with_error_details(Code::Internal, \"x\", d) }",
        ),
        (
            "api/mod.rs",
            "fn f(e: ApiError) -> Status { Status::from(e) }",
        ),
        (
            "auth/gate.rs",
            "#[cfg(test)] mod tests { fn f() { tonic::Status::internal(\"x\"); } }",
        ),
    ];
    for (file, source) in right {
        assert_eq!(
            status_makers(Path::new(file), source),
            Vec::new(),
            "{file}: {source:?}"
        );
    }
}
