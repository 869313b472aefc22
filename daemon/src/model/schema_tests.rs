//! The canonical model without a server: fingerprints that must and must not move, and
//! the diff's lines.

use super::{
    Column, Constraint, ConstraintKind, FingerprintOptions, Index, SchemaModel, Table, View,
    diff_schemas,
};

fn column(name: &str, ty: &str, default: Option<&str>) -> Column {
    Column {
        name: name.into(),
        data_type: ty.into(),
        nullable: true,
        default: default.map(Into::into),
        ..Default::default()
    }
}

fn model() -> SchemaModel {
    let mut m = SchemaModel::default();
    let mut accounts = Table {
        columns: vec![
            column("id", "bigint", None),
            column("status", "text", Some("'active'::text")),
            column("note", "text", None),
        ],
        ..Default::default()
    };
    accounts.constraints.insert(
        "accounts_pkey".into(),
        Constraint {
            kind: ConstraintKind::PrimaryKey,
            definition: "PRIMARY KEY (id)".into(),
            generated_name: true,
        },
    );
    accounts.constraints.insert(
        "accounts_status_check".into(),
        Constraint {
            kind: ConstraintKind::Check,
            definition: "CHECK (status <> ''::text)".into(),
            generated_name: true,
        },
    );
    m.tables.insert("accounts".into(), accounts);
    m.tables.insert("users".into(), Table::default());
    m.views.insert(
        "active".into(),
        View {
            materialized: false,
            definition: "SELECT id FROM accounts WHERE status = 'active'::text".into(),
        },
    );
    m
}

const OPTS: FingerprintOptions = FingerprintOptions {
    ignore_generated_names: false,
};

#[test]
fn the_fingerprint_is_a_sha256_of_sorted_json_and_ignores_insertion_order() {
    let a = model();
    // The same objects inserted the other way round.
    let mut b = SchemaModel::default();
    for (k, v) in a.tables.iter().rev() {
        b.tables.insert(k.clone(), v.clone());
    }
    b.views = a.views.clone();
    assert_eq!(a.fingerprint(OPTS), b.fingerprint(OPTS));
    assert_eq!(a.fingerprint(OPTS).len(), 64);
    let json = a.canonical_json(OPTS);
    // Keys sorted at every level: "enums" before "functions" before "sequences" …
    let at = |k: &str| json.find(k).unwrap();
    assert!(at("\"enums\"") < at("\"functions\"") && at("\"functions\"") < at("\"tables\""));
    assert!(at("\"data_type\"") < at("\"default\"") && at("\"default\"") < at("\"name\""));
}

#[test]
fn column_order_counts_and_so_does_every_attribute() {
    let a = model();
    let mut b = a.clone();
    b.tables.get_mut("accounts").unwrap().columns.swap(1, 2);
    assert_ne!(a.fingerprint(OPTS), b.fingerprint(OPTS));
    let d = diff_schemas(&a, &b);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].object, "table accounts");
    assert_eq!(d[0].change, "column order differs");

    let mut c = a.clone();
    c.tables.get_mut("accounts").unwrap().columns[1].default = None;
    let d = diff_schemas(&a, &c);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d[0].to_string(),
        "column accounts.status: default differs (expected 'active'::text, found none)"
    );
}

#[test]
fn the_diff_names_missing_extra_and_changed_objects() {
    let a = model();
    let mut b = a.clone();
    let t = b.tables.get_mut("accounts").unwrap();
    t.columns.retain(|c| c.name != "note");
    t.constraints
        .get_mut("accounts_status_check")
        .unwrap()
        .definition = "CHECK (true)".into();
    t.indexes.insert(
        "accounts_note_idx".into(),
        Index {
            keys: vec!["status".into()],
            method: Some("btree".into()),
            ..Default::default()
        },
    );
    b.views.get_mut("active").unwrap().definition = "SELECT 1".into();
    b.tables.remove("users");
    let lines: Vec<String> = diff_schemas(&a, &b)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "column accounts.note: missing (text)",
            "check constraint accounts_status_check: expression differs (expected CHECK (status <> ''::text), found CHECK (true))",
            "index accounts_note_idx: extra (on accounts (status) using btree)",
            "table users: missing",
            "view active: definition differs (expected SELECT id FROM accounts WHERE status = 'active'::text, found SELECT 1)",
        ]
    );
    assert!(diff_schemas(&a, &a).is_empty());
}

#[test]
fn generated_names_count_by_default_and_not_when_ignored() {
    let a = model();
    let mut b = a.clone();
    let t = b.tables.get_mut("accounts").unwrap();
    let pk = t.constraints.remove("accounts_pkey").unwrap();
    t.constraints.insert("accounts_pkey1".into(), pk);
    assert_ne!(a.fingerprint(OPTS), b.fingerprint(OPTS));
    let ignore = FingerprintOptions {
        ignore_generated_names: true,
    };
    assert_eq!(a.fingerprint(ignore), b.fingerprint(ignore));
    // A name the user chose still counts when generated names are ignored.
    let mut c = a.clone();
    let t = c.tables.get_mut("accounts").unwrap();
    let mut check = t.constraints.remove("accounts_status_check").unwrap();
    check.generated_name = false;
    t.constraints
        .insert("status_nonempty".into(), check.clone());
    let mut d = c.clone();
    let t = d.tables.get_mut("accounts").unwrap();
    t.constraints.remove("status_nonempty");
    t.constraints.insert("status_ok".into(), check);
    assert_ne!(c.fingerprint(ignore), d.fingerprint(ignore));
}

#[test]
fn a_model_survives_its_json() {
    let a = model();
    let back: SchemaModel = serde_json::from_str(&a.canonical_json(OPTS)).unwrap();
    assert_eq!(back, a);
}
