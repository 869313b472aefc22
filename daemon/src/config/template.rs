//! DSN templates: a fleet's `dsn_template` with per-tenant variables, e.g.
//! `postgres://app@{host}:5432/tenant_{id}` and `{ id = "acme", vars = { host = "db-3" } }`.
//!
//! `{name}` is replaced by the tenant's variable `name`, `{id}` by its id; `{{` and `}}` stand
//! for literal braces (the `strfmt` crate's syntax, Rust's `format!` with named arguments).
//! Values are inserted as they are.

use std::collections::{BTreeMap, HashMap};

use super::DsnError;

/// Renders `template` for the tenant `id` with `vars` (a variable named `id` is the id).
///
/// # Errors
/// [`DsnError::TemplateVariable`] naming the variable the tenant does not set;
/// [`DsnError::TemplateSyntax`] for a brace that is unmatched.
pub(super) fn render(
    template: &str,
    id: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, DsnError> {
    let mut values: HashMap<String, &str> =
        vars.iter().map(|(k, v)| (k.clone(), v.as_str())).collect();
    values.insert("id".into(), id);
    strfmt::strfmt(template, &values).map_err(|e| match e {
        strfmt::FmtError::KeyError(_) => DsnError::TemplateVariable(e),
        // The template may hold a password: its text stays out of the message.
        _ => DsnError::TemplateSyntax,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn variables_and_the_id_are_substituted() {
        let dsn = render(
            "postgres://app@{host}:5432/tenant_{id}",
            "acme",
            &vars(&[("host", "db-3.internal"), ("id", "not-the-id")]),
        );
        assert_eq!(
            dsn.as_deref().ok(),
            Some("postgres://app@db-3.internal:5432/tenant_acme")
        );
    }

    #[test]
    fn doubled_braces_are_literal() {
        let dsn = render("sqlite://{{x}}/{id}.db", "t1", &BTreeMap::new());
        assert_eq!(dsn.as_deref().ok(), Some("sqlite://{x}/t1.db"));
    }

    #[test]
    fn unset_variables_and_lone_braces_are_errors() {
        let none = BTreeMap::new();
        let unset = render("postgres://{host}/db", "t", &none).unwrap_err();
        assert!(unset.to_string().contains("host"), "{unset}");
        assert!(render("postgres://{host/db", "t", &none).is_err());
        assert!(render("postgres://h/d}b", "t", &none).is_err());
    }
}
