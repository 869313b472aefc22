//! Certificate subjects (issue 25, finding 3): an RFC 4514 subject as `[auth] clients`
//! reads it never panics, and its attributes written back with every value byte escaped
//! (`\\XX`) parse to the same set; arbitrary DER never panics the certificate reader.
#![no_main]

use avocet_daemon::config::{certificate_attributes, subject_attributes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = certificate_attributes(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(attributes) = subject_attributes(text) else {
        return;
    };
    let written: Vec<String> = attributes
        .iter()
        .map(|(kind, value)| {
            let escaped: String = value.bytes().map(|b| format!("\\{b:02X}")).collect();
            format!("{kind}={escaped}")
        })
        .collect();
    let again = subject_attributes(&written.join(", ")).expect("escaped attributes parse");
    assert_eq!(again, attributes);
});
