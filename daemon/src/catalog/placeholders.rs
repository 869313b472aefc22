//! Finding a script's `${name}` placeholders and where each sits: outside quotes, inside a
//! quoted string or identifier, or inside a dollar-quoted string (from the tokens), so the
//! value can be quoted for that place. Placeholders in comments are left alone.

use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

use super::split::Offsets;
use crate::model::{DialectKind, Placeholder, PlaceholderContext, is_placeholder_name};

/// Finds the placeholders of a script from its tokens, fed in runs, in order.
pub(super) struct Finder<'a> {
    sql: &'a str,
    backslash: bool,
    offsets: Offsets<'a>,
    /// Byte ranges of quoted tokens and comments, with what a placeholder inside becomes
    /// (`None`: left alone, in a comment). Empty when `sql` has no `${`.
    regions: Vec<(usize, usize, Option<PlaceholderContext>)>,
    wanted: bool,
}

impl<'a> Finder<'a> {
    /// A finder for `sql` (the tokenizer's text) in `dialect`.
    pub(super) fn new(sql: &'a str, dialect: DialectKind) -> Self {
        Self {
            sql,
            backslash: dialect == DialectKind::Mysql,
            offsets: Offsets::new(sql),
            regions: Vec::new(),
            wanted: sql.contains("${"),
        }
    }

    /// Reads the next run of tokens.
    pub(super) fn feed(&mut self, tokens: &[TokenWithSpan]) {
        if !self.wanted {
            return;
        }
        let backslash = self.backslash;
        for t in tokens {
            let context = match &t.token {
                Token::SingleQuotedString(_)
                | Token::NationalStringLiteral(_)
                | Token::EscapedStringLiteral(_) => Some(Some(PlaceholderContext::Quoted {
                    quote: '\'',
                    backslash,
                })),
                Token::DoubleQuotedString(_) => Some(Some(PlaceholderContext::Quoted {
                    quote: '"',
                    backslash,
                })),
                Token::DollarQuotedString(_) => Some(Some(PlaceholderContext::Dollar)),
                Token::Word(w) => w.quote_style.map(|quote| {
                    Some(PlaceholderContext::Quoted {
                        quote: match quote {
                            '[' => ']',
                            q => q,
                        },
                        backslash: false,
                    })
                }),
                Token::Whitespace(Whitespace::SingleLineComment { .. })
                | Token::Whitespace(Whitespace::MultiLineComment(_)) => Some(None),
                _ => None,
            };
            if let Some(context) = context {
                let start = self.offsets.byte(t.span.start.line, t.span.start.column);
                let end = self.offsets.byte(t.span.end.line, t.span.end.column);
                if self.sql[start..end].contains("${") {
                    self.regions.push((start, end, context));
                }
            }
        }
    }

    /// The placeholders, once every token was fed.
    pub(super) fn finish(self) -> Vec<Placeholder> {
        let sql = self.sql;
        let mut found = Vec::new();
        if !self.wanted {
            return found;
        }
        let mut regions = self.regions.iter().peekable();
        // The line of byte `counted` (1-based), kept as `from` moves forward.
        let (mut line, mut counted) = (1u64, 0usize);
        let mut from = 0;
        while let Some(i) = sql[from..].find("${") {
            let start = from + i;
            from = start + 2;
            let Some(len) = sql[start + 2..].find('}') else {
                break;
            };
            let name = &sql[start + 2..start + 2 + len];
            if !is_placeholder_name(name) {
                continue;
            }
            let end = start + 3 + len;
            while regions.next_if(|(_, e, _)| *e <= start).is_some() {}
            let context = match regions.peek().filter(|(s, e, _)| *s <= start && end <= *e) {
                Some((_, _, None)) => continue,
                Some((_, _, Some(c))) => *c,
                None => PlaceholderContext::Bare,
            };
            line += sql[counted..start].matches('\n').count() as u64;
            counted = start;
            found.push(Placeholder {
                name: name.to_owned(),
                bytes: start..end,
                line,
                context,
            });
            from = end;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::{
        catalog::parse_script,
        model::{DialectKind, PlaceholderContext, PlaceholderError},
    };

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn placeholders_are_found_with_their_context_and_filled() {
        let sql = "-- for ${tenant_id} (a comment: left alone)\n\
                   CREATE SCHEMA ${schema};\n\
                   INSERT INTO t (a, b) VALUES ('${tenant_id}', \"${fleet}\");\n\
                   SELECT $$ ${region} $$;";
        let script = parse_script(sql, DialectKind::Postgres).unwrap();
        let found: Vec<(&str, u64, PlaceholderContext)> = script
            .placeholders
            .iter()
            .map(|p| (p.name.as_str(), p.line, p.context))
            .collect();
        let quoted = |quote| PlaceholderContext::Quoted {
            quote,
            backslash: false,
        };
        assert_eq!(
            found,
            [
                ("schema", 2, PlaceholderContext::Bare),
                ("tenant_id", 3, quoted('\'')),
                ("fleet", 3, quoted('"')),
                ("region", 4, PlaceholderContext::Dollar),
            ]
        );
        let values = vars(&[
            ("tenant_id", "o'neil"),
            ("schema", "tenant_7"),
            ("fleet", "eu\"1"),
            ("region", "eu"),
        ]);
        let rendered = script.rendered(&values).unwrap();
        // A statement's text starts after the previous `;`: the comment before it stays,
        // its placeholder unfilled.
        assert_eq!(
            rendered[0],
            "-- for ${tenant_id} (a comment: left alone)\nCREATE SCHEMA tenant_7"
        );
        assert_eq!(
            rendered[1],
            "INSERT INTO t (a, b) VALUES ('o''neil', \"eu\"\"1\")"
        );
        assert_eq!(rendered[2], "SELECT $$ eu $$");
        // The checksum is the file's, whatever the values.
        assert_eq!(script.checksum.len(), 64);
        let unknown = script.rendered(&vars(&[("schema", "s")])).unwrap_err();
        assert!(
            matches!(unknown, PlaceholderError::Unknown { line: 3, .. }),
            "{unknown}"
        );
        let mut hostile = values.clone();
        hostile.insert("schema".into(), "x; DROP TABLE t".into());
        let refused = script.rendered(&hostile).unwrap_err();
        assert!(
            matches!(refused, PlaceholderError::Unsafe { line: 2, .. }),
            "{refused}"
        );
    }

    #[test]
    fn mysql_strings_escape_backslashes_too() {
        let script = parse_script("INSERT INTO t VALUES ('${v}');", DialectKind::Mysql).unwrap();
        let rendered = script.rendered(&vars(&[("v", "a\\' OR 1=1 -- ")])).unwrap();
        assert_eq!(rendered[0], "INSERT INTO t VALUES ('a\\\\'' OR 1=1 -- ')");
    }
}
