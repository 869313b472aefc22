//! Secrets out of text: DSN passwords in anything that may be shown (an error that quotes a
//! configuration line, a message that names a URL). DESIGN.md rule 6.

/// `text` with every URL password replaced by `****`: the password of a userinfo
/// (`scheme://user:secret@host`, RFC 3986 section 3.2.1), of a `user:secret@host` that lost
/// its `://` (a mistyped DSN quoted by an error), and the value of a `password=` or
/// `sslpassword=` query parameter.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        out.push_str(&rest[..at + 3]);
        rest = &rest[at + 3..];
        let end = rest
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                let userinfo = &authority[..userinfo_end];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str("****");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[userinfo_end..]);
            }
            // No `@`: `host:port`, or a userinfo cut off before its host (a broken line a
            // syntax error quotes), whose part after `:` is no port: masked.
            None => match authority.split_once(':') {
                Some((user, rest))
                    if !authority.starts_with('[')
                        && !rest.is_empty()
                        && !rest.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    out.push_str(user);
                    out.push_str(":****");
                }
                _ => out.push_str(authority),
            },
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    redact_parameters(&redact_bare_userinfo(&out))
}

/// Every `…:secret@` (a word with a `:` right before an `@`) with the part after its last
/// `:` masked: userinfo without a `scheme://` in front of it.
fn redact_bare_userinfo(text: &str) -> String {
    let boundary = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '"' | '\'' | '`' | '/' | '(' | ',' | '=' | '<' | '[' | '{'
            )
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        // After the boundary character, whatever its width (a boundary can be multi-byte
        // whitespace, such as U+3000: found by the config fuzz target).
        let word_start = rest[..at]
            .char_indices()
            .rev()
            .find(|(_, c)| boundary(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let masked = match rest[word_start..at].rfind(':') {
            Some(colon) if word_start + colon + 1 < at => {
                let cut = word_start + colon + 1;
                out.push_str(&rest[..cut]);
                out.push_str("****");
                true
            }
            _ => false,
        };
        if !masked {
            out.push_str(&rest[..at]);
        }
        out.push('@');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

/// True when `text` holds a password [`redact_secrets`] would mask.
pub fn holds_password(text: &str) -> bool {
    redact_secrets(text) != text
}

/// The values of `password=` and `sslpassword=` parameters replaced by `****`.
fn redact_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(at) = lower.find("password=") else {
            out.push_str(rest);
            return out;
        };
        let value = at + "password=".len();
        out.push_str(&rest[..value]);
        let end = rest[value..]
            .find(|c: char| matches!(c, '&' | '"' | '\'' | '`' | ';') || c.is_whitespace())
            .map_or(rest.len(), |e| value + e);
        if end > value {
            out.push_str("****");
        }
        rest = &rest[end..];
    }
}

/// At most the first 128 bytes of `text` (cut at a character boundary), for messages that
/// quote a request: an error never echoes unbounded input (issue 25, finding 17).
pub fn bounded(text: &str) -> &str {
    let mut end = text.len().min(128);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::redact_secrets;

    #[test]
    fn passwords_in_urls_and_parameters_are_masked() {
        let line = r#"tenants = [ { id = "t", dsn = "postgres://postgres:s3cretPW@127.0.0.1:5432/db" labels = {} } ]"#;
        let out = redact_secrets(line);
        assert!(!out.contains("s3cretPW"), "{out}");
        assert!(
            out.contains("postgres://postgres:****@127.0.0.1:5432/db"),
            "{out}"
        );
        let q = redact_secrets("mysql://root@h/db?password=hunter2&ssl-mode=REQUIRED");
        assert_eq!(q, "mysql://root@h/db?password=****&ssl-mode=REQUIRED");
        let at = redact_secrets("postgres://u:p@ss@h/db and sqlite://data/t.db?mode=rwc");
        assert_eq!(at, "postgres://u:****@h/db and sqlite://data/t.db?mode=rwc");
        assert_eq!(redact_secrets("no secrets here"), "no secrets here");
        // A DSN that lost its `://` (found by the config fuzz target), and text with `@`
        // that is no userinfo.
        let mangled = redact_secrets("dsn = \"postgres//:postgres:s3cretPW@127.0.0.1/db\"");
        assert!(!mangled.contains("s3cretPW"), "{mangled}");
        assert_eq!(
            redact_secrets("ops@example.com at 10:30"),
            "ops@example.com at 10:30"
        );
        assert_eq!(redact_secrets("u:****@h"), "u:****@h");
        // Multi-byte whitespace before a userinfo.
        assert_eq!(redact_secrets("a\u{3000}u:pw@h"), "a\u{3000}u:****@h");
        // A userinfo cut off before its host; a host and port stay as they are.
        let cut = redact_secrets("dsn = \"postgres://postgres:s3cretPW[fleets.demo]");
        assert!(!cut.contains("s3cretPW"), "{cut}");
        assert_eq!(
            redact_secrets("postgres://db-1:5432/x"),
            "postgres://db-1:5432/x"
        );
        assert_eq!(
            redact_secrets("postgres://[::1]:5432/x"),
            "postgres://[::1]:5432/x"
        );
        assert!(super::holds_password("postgres://u:p@h/db"));
        assert!(!super::holds_password("postgres://u@h/db?sslmode=require"));
    }
}
