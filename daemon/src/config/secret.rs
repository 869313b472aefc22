//! DSN passwords from outside the configuration file: an environment variable
//! (`password_env`) or a file (`password_file`, e.g. a Kubernetes Secret mounted at
//! `/run/secrets/…`), per tenant or for the whole fleet. The password goes into the DSN's
//! userinfo (RFC 3986 section 3.2.1), percent-encoded, so it never needs to sit in the TOML.

use std::path::PathBuf;

use super::DsnError;

/// Where a DSN's password comes from (a tenant's or a fleet's `password_env` and
/// `password_file`). At most one of the two is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PasswordSource {
    /// An environment variable holding the password.
    pub(crate) password_env: Option<String>,
    /// A file holding the password; one trailing newline is ignored.
    pub(crate) password_file: Option<PathBuf>,
}

impl PasswordSource {
    /// True when neither is set.
    fn is_empty(&self) -> bool {
        self.password_env.is_none() && self.password_file.is_none()
    }

    /// The password, read now.
    ///
    /// # Errors
    /// [`DsnError`] naming the variable or the file (never the password) when both are set,
    /// the variable is unset or not UTF-8, or the file cannot be read.
    fn read(&self) -> Result<Option<String>, DsnError> {
        match (&self.password_env, &self.password_file) {
            (Some(_), Some(_)) => Err(DsnError::BothSources),
            (Some(var), None) => std::env::var(var)
                .map(Some)
                .map_err(|source| DsnError::Env {
                    var: var.clone(),
                    source,
                }),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| {
                    let s = s.strip_suffix('\n').unwrap_or(&s);
                    Some(s.strip_suffix('\r').unwrap_or(s).to_owned())
                })
                .map_err(|source| DsnError::File {
                    path: path.clone(),
                    source,
                }),
            (None, None) => Ok(None),
        }
    }
}

/// `dsn` of a tenant registered through the API or discovered, with the fleet's password
/// (`source`) in its userinfo unless it carries one of its own.
///
/// # Errors
/// As [`with_password`].
pub(crate) fn fill_password(dsn: &str, source: &PasswordSource) -> Result<String, DsnError> {
    if source.is_empty() || crate::model::holds_password(dsn) {
        return Ok(dsn.to_owned());
    }
    with_password(dsn.to_owned(), &PasswordSource::default(), source)
}

/// `dsn` with the password of `source` (the tenant's, else the fleet's) in its userinfo.
///
/// # Errors
/// [`DsnError`] (never holding the password or the DSN) when the password cannot be read,
/// the DSN is not a URL with a host (SQLite has no password), or it names no user.
pub(super) fn with_password(
    dsn: String,
    tenant: &PasswordSource,
    fleet: &PasswordSource,
) -> Result<String, DsnError> {
    let source = if tenant.is_empty() { fleet } else { tenant };
    let Some(password) = source.read()? else {
        return Ok(dsn);
    };
    let mut url = url::Url::parse(&dsn).map_err(DsnError::NotAUrl)?;
    if url.username().is_empty() {
        return Err(DsnError::NoUser);
    }
    url.set_password(Some(&password))
        .map_err(|()| DsnError::CannotHoldPassword)?;
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_from_a_file_goes_into_the_userinfo_encoded() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "p@ss:w/rd\n").unwrap();
        let source = PasswordSource {
            password_file: Some(file.path().to_owned()),
            ..Default::default()
        };
        let dsn = with_password(
            "postgres://app@db-3.internal:5432/t1".into(),
            &PasswordSource::default(),
            &source,
        )
        .unwrap();
        assert_eq!(dsn, "postgres://app:p%40ss%3Aw%2Frd@db-3.internal:5432/t1");
    }

    #[test]
    fn registered_dsns_take_the_fleets_password_unless_they_hold_one() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "fleet-pw\n").unwrap();
        let fleet = PasswordSource {
            password_file: Some(file.path().to_owned()),
            ..Default::default()
        };
        let filled = fill_password("postgres://app@h/t1", &fleet).unwrap();
        assert_eq!(filled, "postgres://app:fleet-pw@h/t1");
        let own = fill_password("postgres://app:own@h/t1", &fleet).unwrap();
        assert_eq!(own, "postgres://app:own@h/t1");
        let none = fill_password("postgres://app@h/t1", &PasswordSource::default()).unwrap();
        assert_eq!(none, "postgres://app@h/t1");
    }

    #[test]
    fn errors_name_the_source_never_the_password() {
        let unset = PasswordSource {
            password_env: Some("AVOCET_TEST_SURELY_UNSET_PASSWORD".into()),
            ..Default::default()
        };
        let err = with_password("postgres://app@h/db".into(), &unset, &Default::default());
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("AVOCET_TEST_SURELY_UNSET_PASSWORD")
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "s3cretPW").unwrap();
        let source = PasswordSource {
            password_file: Some(file.path().to_owned()),
            ..Default::default()
        };
        let no_user = with_password("postgres://h/db".into(), &source, &Default::default());
        assert!(!no_user.unwrap_err().to_string().contains("s3cretPW"));
        let sqlite = with_password("sqlite://t.db".into(), &source, &Default::default());
        assert!(!sqlite.unwrap_err().to_string().contains("s3cretPW"));
    }
}
