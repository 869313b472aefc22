//! A migration file's text, in each dialect: parsing never panics, statements lie inside
//! the normalised text in order, and the checksum ignores CRLF line ends.
#![no_main]

use avocet_daemon::{DialectKind, parse_script};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let dialect = match pick % 3 {
        0 => DialectKind::Postgres,
        1 => DialectKind::Mysql,
        _ => DialectKind::Sqlite,
    };
    let Ok(script) = parse_script(text, dialect) else {
        return;
    };
    assert_eq!(script.checksum.len(), 64);
    let mut end = 0;
    for span in &script.spans {
        assert!(span.bytes.start >= end && span.bytes.start <= span.bytes.end);
        assert!(span.bytes.end <= script.sql.len());
        assert!(script.sql.is_char_boundary(span.bytes.start));
        assert!(script.sql.is_char_boundary(span.bytes.end));
        assert!(span.line >= 1 && span.column >= 1);
        end = span.bytes.end;
    }
    if !text.contains('\r') {
        let crlf = parse_script(&text.replace('\n', "\r\n"), dialect)
            .expect("the CRLF copy of a file that parses parses");
        assert_eq!(crlf.checksum, script.checksum);
        assert_eq!(crlf.spans.len(), script.spans.len());
    }
});
