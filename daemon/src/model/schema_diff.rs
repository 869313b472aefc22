//! What differs between two [`SchemaModel`]s, as lines a person reads: one [`SchemaChange`]
//! per object missing, extra or different, in a stable order (tables, then views,
//! sequences, enums, functions; by name within each).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::schema::{Column, Constraint, Index, SchemaModel, Table};

/// One difference of an actual schema from the expected one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaChange {
    /// The object, by kind and name: `table accounts`, `column accounts.note`,
    /// `index users_email_idx`, `check constraint orders_total_check`, `view active_users`.
    pub object: String,
    /// What happened to it: `missing`, `extra`, or `<what> differs` (`type differs`,
    /// `default differs`, `expression differs`, `definition differs`, `column order
    /// differs`, …).
    pub change: String,
    /// The expected and the actual value, where they say more than the change.
    pub detail: String,
}

impl std::fmt::Display for SchemaChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.change)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// Every difference of `actual` from `expected`.
pub fn diff_schemas(expected: &SchemaModel, actual: &SchemaModel) -> Vec<SchemaChange> {
    let mut out = Vec::new();
    keyed(&mut out, "table", &expected.tables, &actual.tables, table);
    keyed(
        &mut out,
        "view",
        &expected.views,
        &actual.views,
        |out, name, e, a| {
            if e.materialized != a.materialized {
                out.push(change(&format!("view {name}"), "kind differs", ""));
            }
            if e.definition != a.definition {
                let detail = format!("expected {}, found {}", e.definition, a.definition);
                out.push(change(
                    &format!("view {name}"),
                    "definition differs",
                    &detail,
                ));
            }
        },
    );
    keyed(
        &mut out,
        "sequence",
        &expected.sequences,
        &actual.sequences,
        |out, name, e, a| {
            if e != a {
                let detail = format!("expected {e:?}, found {a:?}");
                out.push(change(
                    &format!("sequence {name}"),
                    "options differ",
                    &detail,
                ));
            }
        },
    );
    keyed(
        &mut out,
        "enum type",
        &expected.enums,
        &actual.enums,
        |out, name, e, a| {
            if e != a {
                let detail = format!("expected {}, found {}", e.join(", "), a.join(", "));
                out.push(change(
                    &format!("enum type {name}"),
                    "labels differ",
                    &detail,
                ));
            }
        },
    );
    keyed(
        &mut out,
        "function",
        &expected.functions,
        &actual.functions,
        |out, name, e, a| {
            if e != a {
                out.push(change(
                    &format!("function {name}"),
                    "definition differs",
                    "",
                ));
            }
        },
    );
    out
}

fn change(object: &str, change: &str, detail: &str) -> SchemaChange {
    SchemaChange {
        object: object.to_owned(),
        change: change.to_owned(),
        detail: detail.to_owned(),
    }
}

/// Objects of one kind keyed by name: each missing, each extra, and `same` for those in
/// both.
fn keyed<T>(
    out: &mut Vec<SchemaChange>,
    kind: &str,
    expected: &BTreeMap<String, T>,
    actual: &BTreeMap<String, T>,
    mut same: impl FnMut(&mut Vec<SchemaChange>, &str, &T, &T),
) {
    for (name, e) in expected {
        match actual.get(name) {
            Some(a) => same(out, name, e, a),
            None => out.push(change(&format!("{kind} {name}"), "missing", "")),
        }
    }
    for name in actual.keys().filter(|n| !expected.contains_key(*n)) {
        out.push(change(&format!("{kind} {name}"), "extra", ""));
    }
}

fn table(out: &mut Vec<SchemaChange>, name: &str, e: &Table, a: &Table) {
    columns(out, name, &e.columns, &a.columns);
    let constraint_kind = |c: &Constraint| c.kind.label();
    for (cname, ec) in &e.constraints {
        let object = format!("{} {cname}", constraint_kind(ec));
        match a.constraints.get(cname) {
            None => out.push(change(
                &object,
                "missing",
                &format!("on {name}: {}", ec.definition),
            )),
            Some(ac) if ac.kind != ec.kind => out.push(change(
                &object,
                "kind differs",
                &format!("expected {}, found {}", ec.kind.label(), ac.kind.label()),
            )),
            Some(ac) if ac.definition != ec.definition => {
                let what = match ec.kind {
                    super::schema::ConstraintKind::Check => "expression differs",
                    _ => "definition differs",
                };
                let detail = format!("expected {}, found {}", ec.definition, ac.definition);
                out.push(change(&object, what, &detail));
            }
            Some(_) => {}
        }
    }
    for (cname, ac) in a
        .constraints
        .iter()
        .filter(|(n, _)| !e.constraints.contains_key(*n))
    {
        let object = format!("{} {cname}", constraint_kind(ac));
        out.push(change(
            &object,
            "extra",
            &format!("on {name}: {}", ac.definition),
        ));
    }
    keyed(
        out,
        "index",
        &e.indexes,
        &a.indexes,
        |out, iname, ei, ai| {
            if ei != ai {
                let detail = format!("expected {}, found {}", describe(ei), describe(ai));
                out.push(change(
                    &format!("index {iname}"),
                    "definition differs",
                    &detail,
                ));
            }
        },
    );
    // An index missing or extra: say on which table.
    for c in out.iter_mut().filter(|c| {
        c.object.starts_with("index ") && c.detail.is_empty() && c.change != "definition differs"
    }) {
        let iname = &c.object["index ".len()..];
        if let Some(i) = e.indexes.get(iname).or_else(|| a.indexes.get(iname)) {
            c.detail = format!("on {name} {}", describe(i));
        }
    }
    keyed(
        out,
        "trigger",
        &e.triggers,
        &a.triggers,
        |out, tname, et, at| {
            if et != at {
                out.push(change(
                    &format!("trigger {name}.{tname}"),
                    "definition differs",
                    "",
                ));
            }
        },
    );
}

fn describe(i: &Index) -> String {
    let mut s = format!("({})", i.keys.join(", "));
    if i.unique {
        s = format!("unique {s}");
    }
    if let Some(m) = &i.method {
        s = format!("{s} using {m}");
    }
    if !i.include.is_empty() {
        s = format!("{s} include ({})", i.include.join(", "));
    }
    if let Some(p) = &i.predicate {
        s = format!("{s} where {p}");
    }
    s
}

fn columns(out: &mut Vec<SchemaChange>, table: &str, e: &[Column], a: &[Column]) {
    let find = |cs: &[Column], n: &str| cs.iter().position(|c| c.name == n);
    for ec in e {
        let object = format!("column {table}.{}", ec.name);
        let Some(ai) = find(a, &ec.name) else {
            out.push(change(&object, "missing", &ec.data_type));
            continue;
        };
        let ac = &a[ai];
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        let mut differs = |what: &str, ev: String, av: String| {
            if ev != av {
                out.push(change(&object, what, &format!("expected {ev}, found {av}")));
            }
        };
        differs("type differs", ec.data_type.clone(), ac.data_type.clone());
        differs(
            "nullability differs",
            null_text(ec.nullable),
            null_text(ac.nullable),
        );
        differs("default differs", show(&ec.default), show(&ac.default));
        differs(
            "generation differs",
            show(&ec.generated),
            show(&ac.generated),
        );
        differs(
            "collation differs",
            show(&ec.collation),
            show(&ac.collation),
        );
    }
    for ac in a.iter().filter(|c| find(e, &c.name).is_none()) {
        let object = format!("column {table}.{}", ac.name);
        out.push(change(&object, "extra", &ac.data_type));
    }
    let shared = |from: &[Column], other: &[Column]| -> Vec<String> {
        from.iter()
            .filter(|c| find(other, &c.name).is_some())
            .map(|c| c.name.clone())
            .collect()
    };
    let (eo, ao) = (shared(e, a), shared(a, e));
    if eo != ao {
        let detail = format!("expected {}, found {}", eo.join(", "), ao.join(", "));
        out.push(change(
            &format!("table {table}"),
            "column order differs",
            &detail,
        ));
    }
}

fn null_text(nullable: bool) -> String {
    match nullable {
        true => "NULL".into(),
        false => "NOT NULL".into(),
    }
}
