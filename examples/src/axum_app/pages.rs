//! Minimal HTML for the demo's pages (no template engine).

use axum::response::Html;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page with `title` and an already-escaped `body`, with the node name in
/// the heading so a reader can see which node served it.
pub fn page(node: &str, title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t} <small>(node {n})</small></h1>{body}\
         <p><a href=\"/\">home</a> · <a href=\"/devices\">your devices</a> · <a href=\"/admin\">admin</a></p>\
         </body></html>",
        t = escape(title),
        n = escape(node),
    ))
}

/// A one-button form posting to `action`.
pub fn button(action: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\"><button>{}</button></form>",
        escape(action),
        escape(label)
    )
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
