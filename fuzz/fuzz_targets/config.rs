//! A configuration file: loading never panics, and an error never shows the password of a
//! DSN's userinfo (`scheme://user:password@host`), even when it quotes the line.
#![no_main]

use avocet_daemon::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = Config::parse(text) {
        let message = e.to_string();
        // The seeds' DSNs carry this password; where the input still holds it as a
        // userinfo, no message may show it.
        if text.contains("://postgres:s3cretPW@") {
            assert!(!message.contains("s3cretPW"), "{message}");
        }
    }
});
