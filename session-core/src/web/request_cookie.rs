//! Finding the session cookie's values in a request's `Cookie` headers.
//!
//! Deliberately small and strict: it only splits `name=value` pairs and
//! never decodes or unquotes anything, because a valid session cookie is
//! plain URL-safe base64 (anything else fails signature verification anyway).

use http::HeaderMap;
use http::header::COOKIE;

use crate::signer::MAX_SIGNED_LEN;

/// At most this many same-named cookies are looked at. A browser may send
/// more than one (e.g. one set for `/` and one for `/app`, or one tossed in
/// by a sibling subdomain); a request stuffed with hundreds gets no more
/// verification work than this.
pub(crate) const MAX_CANDIDATES: usize = 4;

/// The values of cookies named `name`, in header order, skipping values
/// longer than [`MAX_SIGNED_LEN`] (they cannot verify) and header lines that
/// are not visible ASCII. Never panics, whatever the headers hold.
pub(crate) fn session_cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(move |pair| {
            let (n, v) = pair.split_once('=')?;
            (n.trim() == name).then(|| v.trim())
        })
        .filter(|v| !v.is_empty() && v.len() <= MAX_SIGNED_LEN)
        .take(MAX_CANDIDATES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(lines: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(COOKIE, HeaderValue::from_bytes(l).unwrap());
        }
        h
    }

    fn values(h: &HeaderMap) -> Vec<&str> {
        session_cookie_values(h, "id").collect()
    }

    #[test]
    fn finds_the_named_cookie_among_others_and_across_lines() {
        let h = headers(&[b"a=1; id=first;b=2", b"idx=no; id = second ", b"xid=no"]);
        assert_eq!(values(&h), ["first", "second"]);
    }

    #[test]
    fn empty_oversized_and_non_ascii_values_are_skipped() {
        let big = format!("id={}", "A".repeat(MAX_SIGNED_LEN + 1));
        let h = headers(&[
            b"id=",
            big.as_bytes(),
            b"id=\xff\xfe",
            b"id",
            b";;;=;",
            b"id=ok",
        ]);
        assert_eq!(values(&h), ["ok"]);
    }

    #[test]
    fn at_most_a_few_candidates() {
        let line = "id=x; ".repeat(1000);
        let h = headers(&[line.as_bytes()]);
        assert_eq!(values(&h).len(), MAX_CANDIDATES);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_header_bytes_never_panic(bytes in proptest::collection::vec(32u8..=255, 0..300)) {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                let mut h = HeaderMap::new();
                h.append(COOKIE, v);
                let _ = values(&h);
            }
        }
    }
}
