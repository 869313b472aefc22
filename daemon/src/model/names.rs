//! What a valid name is: tenant and fleet ids, SQL identifiers Avocet creates, and labels.
//! Pure rules shared by the configuration and the API.

/// Tenant and fleet ids: `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`.
///
/// # Errors
/// A sentence quoting the id.
pub fn check_id(id: &str) -> Result<(), String> {
    let ok = id.len() <= 128
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{id:?} is not a valid id (letters, digits, _ - .; 1-128 chars)"
        )),
    }
}

/// SQL identifiers Avocet creates (tables, schemas): `[A-Za-z_][A-Za-z0-9_]{0,62}`, the
/// portable subset of PostgreSQL's 63-byte and MySQL's 64-character limits.
///
/// # Errors
/// A sentence quoting the identifier.
pub fn check_identifier(ident: &str) -> Result<(), String> {
    let ok = ident.len() <= 63
        && ident
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && ident.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{ident:?} is not a valid identifier (letters, digits, _)"
        )),
    }
}

/// Label keys and values as Kubernetes allows them (Kubernetes docs, "Labels and
/// Selectors", "Syntax and character set"), so every label can be selected: a name of at
/// most 63 characters after an optional DNS-subdomain `prefix/`, and a value of at most 63,
/// each alphanumeric at both ends with `-`, `_`, `.` inside; the value may be empty.
///
/// # Errors
/// A sentence quoting the key or the value.
pub fn check_label(key: &str, value: &str) -> Result<(), String> {
    fn name(s: &str) -> bool {
        s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
    }
    let key_name = key.rsplit_once('/').map_or(key, |(prefix, n)| {
        let dns = prefix.len() <= 253
            && !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
        if dns { n } else { "" }
    });
    if !name(key_name) {
        return Err(format!("label key {key:?} is not a valid label name"));
    }
    if !value.is_empty() && !name(value) {
        return Err(format!(
            "label {key:?}: value {value:?} is not a valid label value"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(check_id("acme-eu.1").is_ok());
        assert!(check_id(&"a".repeat(128)).is_ok());
        assert!(check_id(&"a".repeat(129)).is_err());
        for bad in ["", "../x", "a;b", "a'b", "-a", "a\0b", "аcme"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn label_syntax_follows_kubernetes() {
        assert!(check_label("region", "eu-west").is_ok());
        assert!(check_label("example.com/tier", "").is_ok());
        assert!(check_label("Example.com/tier", "x").is_err());
        assert!(check_label("region", "eu west").is_err());
        assert!(check_label("-region", "eu").is_err());
        assert!(check_label("region", "eu'").is_err());
        assert!(check_label(&"k".repeat(64), "v").is_err());
    }
}
