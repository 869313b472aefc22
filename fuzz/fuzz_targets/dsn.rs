//! A registered DSN (issue 25, findings 2, 4, 6, 19): the registration check never
//! panics, and a DSN it accepts names a server among `allowed_hosts`, carries no
//! password (in its userinfo or a decoded parameter) and no parameter outside the
//! allow-list.
#![no_main]

use avocet_daemon::{
    DialectKind,
    config::{RegistrationPolicy, TargetKey},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let policy = RegistrationPolicy::new(vec!["127.0.0.1:5432".into()], None, "", false)
        .expect("a valid policy");
    for dialect in [DialectKind::Postgres, DialectKind::Mysql, DialectKind::Sqlite] {
        let Ok(key) = policy.check(dialect, text, None) else {
            continue;
        };
        assert_eq!(TargetKey::of(dialect, text, None), Some(key.clone()));
        if let TargetKey::Server { host, .. } = &key {
            assert_eq!(host, "127.0.0.1:5432", "{text:?}");
        }
        let url = url::Url::parse(text).expect("an accepted server DSN is a URL");
        assert!(url.password().is_none(), "{text:?}");
        assert!(
            url.query_pairs().all(|(k, _)| !k.to_ascii_lowercase().contains("pass")),
            "{text:?}"
        );
    }
});
