//! Distinguished names as sets of (type, value) attributes, compared exactly (issue 25,
//! finding 3): a configured subject is parsed as RFC 4514 text (escapes and quotes
//! honoured), a certificate's subject is read attribute by attribute from its DER, and
//! neither is ever re-rendered and split again, so `CN="ci-deployer,O=Example"` (one
//! attribute) can never equal `CN=ci-deployer, O=Example` (two).

/// A distinguished name: its attributes, the type upper-cased, sorted.
pub(crate) type Attributes = Vec<(String, String)>;

/// Why a subject (RFC 4514 text, or a certificate's) could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// Text that ends with a separator.
    #[error("a trailing separator")]
    TrailingSeparator,
    /// An attribute without `=`.
    #[error("{0:?} has no `=`")]
    NoEquals(String),
    /// A type that is neither a keyword nor a dotted OID.
    #[error("{0:?} is not an attribute type")]
    NotAType(String),
    /// A `#`-encoded (BER) value.
    #[error("a #-encoded (BER) value is not supported: write the text")]
    Ber,
    /// A `"` without its closing `"`.
    #[error("an unterminated quote")]
    UnterminatedQuote,
    /// A `\` followed by one hex digit only.
    #[error("`\\` takes a special character or two hex digits")]
    BadEscape,
    /// A `\` at the end.
    #[error("a dangling `\\`")]
    DanglingEscape,
    /// Escaped bytes that are not UTF-8.
    #[error("a value is not UTF-8")]
    NotUtf8,
    /// A certificate that does not parse as X.509.
    #[error("the client certificate does not parse: {0}")]
    Certificate(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// A certificate subject attribute whose value is not a string.
    #[error("subject attribute {0} is not a string")]
    NotAString(String),
}

/// The attribute types an RFC 4514 string may name by keyword, as x509-parser names them
/// (upper-cased); anything else must be a dotted OID.
fn canonical_type(t: &str) -> Option<String> {
    let t = t.trim();
    let upper = t.to_ascii_uppercase();
    let upper = upper.strip_prefix("OID.").unwrap_or(&upper).to_owned();
    if upper.is_empty() {
        return None;
    }
    let dotted = upper.chars().all(|c| c.is_ascii_digit() || c == '.');
    let keyword = upper.starts_with(|c: char| c.is_ascii_alphabetic())
        && upper.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    (dotted || keyword).then(|| match upper.as_str() {
        "EMAILADDRESS" | "E" => "EMAIL".to_owned(),
        "S" => "ST".to_owned(),
        "SERIALNUMBER" => "SERIALNUMBER".to_owned(),
        _ => upper,
    })
}

/// The attributes of RFC 4514 text such as `CN=ci-deployer, O=Example` (order and the
/// spaces around `,` and `+` do not matter; `\,`, `\+`, `\"`, `\\`, `\XX` and `"…"` quote).
///
/// # Errors
/// [`SubjectError`] for empty text, an attribute without `=`, a bad type, a dangling
/// escape, a `#` (BER) value or an unterminated quote.
pub(crate) fn parse(text: &str) -> Result<Attributes, SubjectError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut kind = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(c) => kind.push(c),
                None if kind.trim().is_empty() && !out.is_empty() => {
                    return Err(SubjectError::TrailingSeparator);
                }
                None => return Err(SubjectError::NoEquals(kind.trim().to_owned())),
            }
        }
        let kind =
            canonical_type(&kind).ok_or_else(|| SubjectError::NotAType(kind.trim().to_owned()))?;
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek() == Some(&'#') {
            return Err(SubjectError::Ber);
        }
        let mut bytes: Vec<u8> = Vec::new();
        // Bytes up to `kept` are kept even if spaces: they were escaped or quoted.
        let mut kept = 0;
        let mut end = None;
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => escape(&mut chars, &mut bytes)?,
                    Some(c) => push(&mut bytes, c),
                    None => return Err(SubjectError::UnterminatedQuote),
                }
            }
            kept = bytes.len();
        }
        loop {
            match chars.next() {
                Some(c @ (',' | '+' | ';')) => {
                    end = Some(c);
                    break;
                }
                Some('\\') => {
                    escape(&mut chars, &mut bytes)?;
                    kept = bytes.len();
                }
                Some(c) => push(&mut bytes, c),
                None => break,
            }
        }
        while bytes.len() > kept && bytes.last() == Some(&b' ') {
            bytes.pop();
        }
        let value = String::from_utf8(bytes).map_err(|_| SubjectError::NotUtf8)?;
        out.push((kind, value));
        if end.is_none() {
            break;
        }
    }
    out.sort();
    Ok(out)
}

fn push(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// After a `\`: a special character, or two hex digits naming a byte.
fn escape(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    bytes: &mut Vec<u8>,
) -> Result<(), SubjectError> {
    match chars.next() {
        Some(h) if h.is_ascii_hexdigit() => {
            let l = chars
                .next()
                .filter(char::is_ascii_hexdigit)
                .ok_or(SubjectError::BadEscape)?;
            let byte =
                u8::from_str_radix(&format!("{h}{l}"), 16).map_err(|_| SubjectError::BadEscape)?;
            bytes.push(byte);
            Ok(())
        }
        Some(c) => {
            push(bytes, c);
            Ok(())
        }
        None => Err(SubjectError::DanglingEscape),
    }
}

/// The subject of DER certificate `der`, attribute by attribute (a multi-valued RDN's
/// values each count), the type as x509-parser abbreviates it (`CN`, `O`), else its dotted
/// OID, upper-cased.
///
/// # Errors
/// [`SubjectError::Certificate`] when it does not parse, [`SubjectError::NotAString`] when
/// an attribute's value is not a string.
pub(crate) fn of_certificate(der: &[u8]) -> Result<Attributes, SubjectError> {
    use x509_parser::objects::{oid_registry, oid2abbrev};
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(SubjectError::Certificate)?;
    let mut out = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        for attribute in rdn.iter() {
            let oid = attribute.attr_type();
            let kind = match oid2abbrev(oid, oid_registry()) {
                Ok(abbrev) => abbrev.to_owned(),
                Err(_) => oid.to_id_string(),
            };
            let kind = canonical_type(&kind).unwrap_or(kind);
            let value = attribute
                .as_str()
                .map_err(|_| SubjectError::NotAString(kind.clone()))?;
            out.push((kind, value.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Attributes {
        let mut v: Attributes = p
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rfc4514_text_is_parsed_with_its_escapes() {
        let two = pairs(&[("CN", "ci-deployer"), ("O", "Example")]);
        assert_eq!(parse("CN=ci-deployer,O=Example").unwrap(), two);
        assert_eq!(parse("o=Example, cn=ci-deployer").unwrap(), two);
        assert_eq!(parse("CN=ci-deployer+O=Example").unwrap(), two);
        let one = pairs(&[("CN", "ci-deployer,O=Example")]);
        assert_eq!(parse(r"CN=ci-deployer\,O=Example").unwrap(), one);
        assert_eq!(parse(r#"CN="ci-deployer,O=Example""#).unwrap(), one);
        assert_eq!(parse(r"CN=ci-deployer\2CO=Example").unwrap(), one);
        assert_eq!(parse(r"CN=\ lead").unwrap(), pairs(&[("CN", " lead")]));
        for bad in [
            "", "CN", "CN=a,", "=a", "CN=#0403", "CN=\"a", "CN=a\\", "C N=a",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    /// The spoofs of finding 3: one attribute whose value holds `,` or `+` and looks like
    /// two when rendered without escaping.
    #[test]
    fn a_certificate_with_one_attribute_never_matches_two() {
        use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
        let der = |attrs: &[(DnType, &str)]| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            let mut dn = DistinguishedName::new();
            for (t, v) in attrs {
                dn.push(t.clone(), *v);
            }
            params.distinguished_name = dn;
            let key = KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let wanted = parse("CN=ci-deployer, O=Example").unwrap();
        let real = der(&[
            (DnType::CommonName, "ci-deployer"),
            (DnType::OrganizationName, "Example"),
        ]);
        assert_eq!(of_certificate(&real).unwrap(), wanted);
        for spoof in [
            "ci-deployer,O=Example",
            "ci-deployer+O=Example",
            "ci-deployer, O=Example",
        ] {
            let got = of_certificate(&der(&[(DnType::CommonName, spoof)])).unwrap();
            assert_ne!(got, wanted, "{spoof}");
            assert_eq!(got, pairs(&[("CN", spoof)]));
        }
    }
}
