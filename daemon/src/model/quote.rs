//! Quoted input in messages, bounded (issue 25, finding 17): an error quotes a request's
//! text as Rust's `{:?}` writes a string (`"…"`, with `\"` and `\\` escaped), and no one
//! quotation may carry more than [`MAX_QUOTED`] bytes of it.

use std::borrow::Cow;

/// Most bytes of one quotation a message keeps.
pub const MAX_QUOTED: usize = 128;

/// `message` with every double-quoted run (an opening `"` to the next `"` not escaped by
/// `\`, or to the end) longer than [`MAX_QUOTED`] bytes cut to its first [`MAX_QUOTED`]
/// bytes (on a character boundary, never between a `\` and what it escapes), followed by `…"` and the
/// quotation's length (`(1048576 bytes)`). Text outside quotations is kept as it is;
/// a message with no long quotation comes back borrowed.
pub fn bound_quotes(message: &str) -> Cow<'_, str> {
    let bytes = message.as_bytes();
    let mut out: Option<String> = None;
    // `kept`: bytes of `message` already copied to `out` (or that need no copy yet).
    let mut kept = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        let mut cut = None;
        while end < bytes.len() && bytes[end] != b'"' {
            let step = if bytes[end] == b'\\' { 2 } else { 1 };
            if cut.is_none() && end - start + step > MAX_QUOTED {
                cut = Some(end);
            }
            end = (end + step).min(bytes.len());
        }
        if let Some(mut at) = cut {
            while !message.is_char_boundary(at) {
                at -= 1;
            }
            let o = out.get_or_insert_with(|| String::with_capacity(message.len().min(4096)));
            o.push_str(&message[kept..at]);
            o.push_str(&format!("…\" ({} bytes)", end - start));
            kept = (end + 1).min(bytes.len());
        }
        i = end + 1;
    }
    match out {
        None => Cow::Borrowed(message),
        Some(mut o) => {
            o.push_str(&message[kept..]);
            Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quotations_are_cut_and_short_ones_kept() {
        let long = "x".repeat(20_000);
        let message = format!("invalid label selector {long:?}: bad key in {:?}", "a=b");
        let out = bound_quotes(&message);
        assert!(out.len() < 300, "{out}");
        assert!(
            out.contains(&format!("\"{}…\" (20000 bytes)", "x".repeat(128))),
            "{out}"
        );
        assert!(out.ends_with(": bad key in \"a=b\""), "{out}");
        assert!(matches!(
            bound_quotes("fleet \"a\" not found"),
            Cow::Borrowed(_)
        ));
        // Escaped quotes stay inside their quotation; multi-byte characters are not split.
        let tricky = format!("{:?} and {:?}", "\"".repeat(500), "é".repeat(500));
        let out = bound_quotes(&tricky);
        assert!(out.contains(" and \"é"), "{out}");
        assert!(out.len() < 400, "{}", out.len());
        // An unterminated quotation is cut too.
        let open = format!("bad \"{long}");
        assert!(bound_quotes(&open).len() < 200);
    }
}
