//! A configuration file: loading never panics, and an error never shows a DSN password.
#![no_main]

use avocet_daemon::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = Config::parse(text) {
        let message = e.to_string();
        // The seeds' DSNs carry this password; no message may show it.
        assert!(!message.contains("s3cretPW"), "{message}");
    }
});
