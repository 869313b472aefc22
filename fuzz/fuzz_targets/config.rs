//! A configuration file: loading never panics, and an error never shows a password in a
//! userinfo (`user:password@host`), even when it quotes the line.
#![no_main]

use avocet_daemon::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = Config::parse(text) {
        let message = e.to_string();
        // The seeds' DSNs carry this password as a userinfo (`user:s3cretPW@host`); no
        // message may show it there. (Mutated text can hold the word elsewhere, as plain
        // text that is no password.)
        assert!(!message.contains(":s3cretPW@"), "{message}");
    }
});
