//! [`CookieConfig`]: the session cookie's name and attributes, secure by default.

use crate::error::{Error, Result};

/// The `SameSite` attribute of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent on same-site requests and on top-level navigations from other
    /// sites (following a link). The default: it blocks cross-site `POST`s
    /// (the classic CSRF) while links into the site keep the user logged in.
    #[default]
    Lax,
    /// Sent on same-site requests only: a user following a link from another
    /// site arrives logged out.
    Strict,
    /// Sent on every request, cross-site included. Requires `secure`; the
    /// application must then defend against CSRF itself.
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// How the session cookie is named and which attributes it carries.
///
/// `Default` is the safe choice for an HTTPS site: the name `id` (which says
/// nothing about the software behind it), `Secure`, `SameSite=Lax`, `Path=/`,
/// no `Domain` (the cookie stays on the exact host), and no `Max-Age`, so the
/// browser forgets the cookie when it closes. `HttpOnly` is always set: no
/// script can read the session token, whatever this configuration says.
///
/// [`validate`](Self::validate) (called by
/// [`SessionLayer::new`](super::SessionLayer::new)) rejects names and values
/// that would break the `Set-Cookie` header or the prefix rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// The cookie name (without the `__Host-` prefix). Default `"id"`.
    pub name: String,
    /// Prefix the name with `__Host-`: browsers then accept the cookie only
    /// with `Secure`, `Path=/` and no `Domain`, from a secure origin, so a
    /// sibling subdomain cannot plant a session cookie on this host
    /// ("cookie tossing"). Default false; recommended when serving over HTTPS.
    pub host_prefix: bool,
    /// Send the cookie over HTTPS only. Default true. Browsers treat
    /// `http://localhost` as secure, so local development works with it on.
    pub secure: bool,
    /// The `SameSite` attribute. Default [`SameSite::Lax`].
    pub same_site: SameSite,
    /// The `Path` attribute. Default `"/"`.
    pub path: String,
    /// The `Domain` attribute: `None` (the default) keeps the cookie on the
    /// exact host that set it; `Some("example.com")` shares it with every
    /// subdomain.
    pub domain: Option<String>,
    /// Give every session cookie a `Max-Age` equal to the session's remaining
    /// absolute lifetime, so it survives a browser restart. Default false:
    /// persistence is opt-in, per application here or per login with
    /// [`LoginOptions::remember_me`](super::LoginOptions::remember_me).
    pub persistent: bool,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            name: "id".to_owned(),
            host_prefix: false,
            secure: true,
            same_site: SameSite::Lax,
            path: "/".to_owned(),
            domain: None,
            persistent: false,
        }
    }
}

/// Characters allowed in a cookie name: an RFC 6265 token (visible ASCII
/// except separators).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// Characters allowed in an attribute value: visible ASCII except `;`.
fn is_attribute_value(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

impl CookieConfig {
    /// The name the cookie is sent under (with `__Host-` when `host_prefix`).
    pub fn cookie_name(&self) -> String {
        if self.host_prefix {
            format!("__Host-{}", self.name)
        } else {
            self.name.clone()
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the problem: a name that is not an
    /// RFC 6265 token, a path not starting with `/` or a path or domain with
    /// characters that would break the header; `SameSite=None` without
    /// `secure`; `host_prefix` without `secure`, with a path other than `/`
    /// or with a domain (browsers would drop such a cookie silently).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if !is_token(&self.name) {
            return bad(format!(
                "cookie name {:?} must be non-empty visible ASCII without separators",
                self.name
            ));
        }
        if !self.path.starts_with('/') || !is_attribute_value(&self.path) {
            return bad(format!(
                "cookie path {:?} must start with / and hold visible ASCII without ;",
                self.path
            ));
        }
        if let Some(d) = &self.domain
            && (d.is_empty() || !is_attribute_value(d))
        {
            return bad(format!(
                "cookie domain {d:?} must be non-empty visible ASCII without ;"
            ));
        }
        if self.same_site == SameSite::None && !self.secure {
            return bad("SameSite=None requires secure = true".into());
        }
        if self.host_prefix && (!self.secure || self.path != "/" || self.domain.is_some()) {
            return bad(
                "the __Host- prefix requires secure = true, path \"/\" and no domain".into(),
            );
        }
        Ok(())
    }

    /// The `Set-Cookie` value that stores `value`, persistent for
    /// `max_age_secs` seconds if given.
    pub(crate) fn set_cookie(&self, value: &str, max_age_secs: Option<i64>) -> String {
        let mut s = format!("{}={value}", self.cookie_name());
        self.push_attributes(&mut s);
        if let Some(secs) = max_age_secs {
            s.push_str(&format!("; Max-Age={}", secs.max(0)));
        }
        s
    }

    /// The `Set-Cookie` value that makes the browser drop the cookie.
    pub(crate) fn clear_cookie(&self) -> String {
        let mut s = format!("{}=", self.cookie_name());
        self.push_attributes(&mut s);
        s.push_str("; Max-Age=0");
        s
    }

    /// Path, Domain, HttpOnly, Secure and SameSite: a clearing header must
    /// repeat Path and Domain exactly, or the browser keeps the cookie.
    fn push_attributes(&self, s: &mut String) {
        s.push_str("; Path=");
        s.push_str(&self.path);
        if let Some(d) = &self.domain {
            s.push_str("; Domain=");
            s.push_str(d);
        }
        s.push_str("; HttpOnly");
        if self.secure {
            s.push_str("; Secure");
        }
        s.push_str("; SameSite=");
        s.push_str(self.same_site.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_secure_and_valid() {
        let c = CookieConfig::default();
        c.validate().unwrap();
        assert_eq!(
            c.set_cookie("v", None),
            "id=v; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
        assert_eq!(
            c.clear_cookie(),
            "id=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0"
        );
    }

    #[test]
    fn host_prefix_strict_domain_and_max_age_render() {
        let c = CookieConfig {
            host_prefix: true,
            same_site: SameSite::Strict,
            ..CookieConfig::default()
        };
        c.validate().unwrap();
        assert_eq!(
            c.set_cookie("v", Some(60)),
            "__Host-id=v; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=60"
        );
        let c = CookieConfig {
            domain: Some("example.com".into()),
            secure: false,
            ..CookieConfig::default()
        };
        assert_eq!(
            c.set_cookie("v", Some(-5)),
            "id=v; Path=/; Domain=example.com; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }

    #[test]
    fn header_breaking_or_browser_rejected_configs_are_refused() {
        let bad = [
            CookieConfig {
                name: String::new(),
                ..Default::default()
            },
            CookieConfig {
                name: "a;b".into(),
                ..Default::default()
            },
            CookieConfig {
                name: "a b".into(),
                ..Default::default()
            },
            CookieConfig {
                name: "é".into(),
                ..Default::default()
            },
            CookieConfig {
                path: "app".into(),
                ..Default::default()
            },
            CookieConfig {
                path: "/a;Domain=evil".into(),
                ..Default::default()
            },
            CookieConfig {
                domain: Some("x\r\ny".into()),
                ..Default::default()
            },
            CookieConfig {
                domain: Some(String::new()),
                ..Default::default()
            },
            CookieConfig {
                same_site: SameSite::None,
                secure: false,
                ..Default::default()
            },
            CookieConfig {
                host_prefix: true,
                secure: false,
                ..Default::default()
            },
            CookieConfig {
                host_prefix: true,
                path: "/app".into(),
                ..Default::default()
            },
            CookieConfig {
                host_prefix: true,
                domain: Some("example.com".into()),
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(
                matches!(c.validate(), Err(Error::InvalidConfig(_))),
                "{c:?}"
            );
        }
    }
}
