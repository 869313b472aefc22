//! A label selector: parsing never panics, and a selector that parses prints as text that
//! parses to the same selector.
#![no_main]

use avocet_daemon::engine::LabelSelector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(selector) = LabelSelector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    let again = LabelSelector::parse(&printed).expect("a printed selector parses");
    assert_eq!(again.to_string(), printed);
});
