//! The HTTP a browser needs from us: a request head parsed by httparse,
//! answered with one of the site's files or the upgrade to a WebSocket,
//! and every other request with a short error. One request per
//! connection (`Connection: close`): the page is a handful of files.

use super::Site;

/// Longest request head (request line and headers), in bytes.
pub const MAX_HEAD: usize = 8 * 1024;

/// Most headers in a request.
const MAX_HEADERS: usize = 32;

/// The headers every response carries. The page runs only its own
/// scripts and styles and talks only to its own origin; nothing may
/// frame it.
const SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'\r\n\
X-Content-Type-Options: nosniff\r\n\
Referrer-Policy: no-referrer\r\n\
X-Frame-Options: DENY\r\n\
Cache-Control: no-cache\r\n";

/// What a request head calls for.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Not all of the head is here yet.
    Incomplete,
    /// Send this response, then close.
    Respond(Vec<u8>),
    /// Send this `101` response; the bytes after the head are the
    /// WebSocket's first.
    Upgrade { response: Vec<u8>, rest: Vec<u8> },
}

/// Answers the request head at the start of `buf`. `tls` says which
/// scheme the page's own origin has.
pub fn answer(buf: &[u8], site: &Site, tls: bool) -> Answer {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return error(431, "Request Header Fields Too Large", "")
        }
        Ok(httparse::Status::Partial) => return Answer::Incomplete,
        Err(httparse::Error::TooManyHeaders) => {
            return error(431, "Request Header Fields Too Large", "")
        }
        Err(err) => return error(400, "Bad Request", &format!("{err}\n")),
    };
    if len > MAX_HEAD {
        return error(431, "Request Header Fields Too Large", "");
    }
    let method = request.method.unwrap_or_default();
    let path = request.path.unwrap_or_default();
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let head = method == "HEAD";
    if method != "GET" && !head {
        return error(405, "Method Not Allowed", "");
    }
    // The query string selects nothing here.
    let path = path.split('?').next().unwrap_or_default();
    if path == site.socket_path {
        return upgrade(&header, &buf[len..], tls);
    }
    let path = if path == "/" { "/index.html" } else { path };
    match site.assets.iter().find(|asset| asset.path == path) {
        Some(asset) => {
            let mut response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n{SECURITY_HEADERS}Connection: close\r\n\r\n",
                asset.content_type,
                asset.body.len()
            )
            .into_bytes();
            if !head {
                response.extend_from_slice(asset.body);
            }
            Answer::Respond(response)
        }
        None => error(404, "Not Found", "no such page\n"),
    }
}

/// The WebSocket handshake (RFC 6455 section 4.2), refused when a browser
/// says the page that opens it is another site's: without this check any
/// page the user visits could talk to the chat as them on a LAN it can
/// reach (cross-site WebSocket hijacking). A client that sends no
/// `Origin` is not a browser and is let through, as the line protocol is.
fn upgrade<'h>(header: &impl Fn(&str) -> Option<&'h str>, rest: &[u8], tls: bool) -> Answer {
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    };
    if !has_token("Upgrade", "websocket") || !has_token("Connection", "upgrade") {
        return error(
            426,
            "Upgrade Required",
            "this address takes WebSocket only\n",
        );
    }
    if header("Sec-WebSocket-Version") != Some("13") {
        let mut answer = status_line(426, "Upgrade Required");
        answer.push_str("Sec-WebSocket-Version: 13\r\n");
        return finish(answer, "");
    }
    let Some(key) = header("Sec-WebSocket-Key").filter(|key| !key.is_empty()) else {
        return error(400, "Bad Request", "no Sec-WebSocket-Key\n");
    };
    if let Some(origin) = header("Origin") {
        let scheme = if tls { "https" } else { "http" };
        let own = header("Host").map(|host| format!("{scheme}://{host}"));
        if !own.is_some_and(|own| own.eq_ignore_ascii_case(origin)) {
            return error(403, "Forbidden", "the page's origin is not this server\n");
        }
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    Answer::Upgrade {
        response: response.into_bytes(),
        rest: rest.to_vec(),
    }
}

fn status_line(code: u16, text: &str) -> String {
    format!("HTTP/1.1 {code} {text}\r\n")
}

fn finish(mut head: String, body: &str) -> Answer {
    head.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{SECURITY_HEADERS}Connection: close\r\n\r\n{body}",
        body.len()
    ));
    Answer::Respond(head.into_bytes())
}

/// A response for a request we do not serve.
pub fn error(code: u16, text: &str, body: &str) -> Answer {
    let mut head = status_line(code, text);
    if code == 405 {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    finish(head, body)
}

/// Whether `bytes` (the first a connection sent) begin an HTTP request:
/// `Some(true)` for a method and a space, `Some(false)` for anything
/// else, `None` while they could still be either. Chat frames begin with
/// `{` (or a blank), so a typo never looks like HTTP.
pub fn looks_like_http(bytes: &[u8]) -> Option<bool> {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"HEAD ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    let mut maybe = false;
    for method in METHODS {
        let n = bytes.len().min(method.len());
        if bytes[..n] == method[..n] {
            if n == method.len() {
                return Some(true);
            }
            maybe = true;
        }
    }
    (!maybe).then_some(false)
}

#[cfg(test)]
mod tests {
    use super::super::Asset;
    use super::*;

    const SITE: Site = Site {
        assets: &[Asset {
            path: "/index.html",
            content_type: "text/html; charset=utf-8",
            body: b"<p>hi</p>",
        }],
        socket_path: "/ws",
    };

    fn respond(request: &str, tls: bool) -> String {
        match answer(request.as_bytes(), &SITE, tls) {
            Answer::Respond(bytes) => String::from_utf8(bytes).unwrap(),
            other => panic!("{request:?}: {other:?}"),
        }
    }

    const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:50445\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    #[test]
    fn pages_and_errors() {
        let page = respond("GET / HTTP/1.1\r\nHost: x\r\n\r\n", true);
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("Content-Security-Policy: default-src 'none'"));
        assert!(page.ends_with("\r\n\r\n<p>hi</p>"));
        let head = respond("HEAD /index.html?x=1 HTTP/1.1\r\n\r\n", true);
        assert!(head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"));
        assert!(respond("GET /nope HTTP/1.1\r\n\r\n", true).starts_with("HTTP/1.1 404"));
        let post = respond("POST / HTTP/1.1\r\n\r\n", true);
        assert!(post.starts_with("HTTP/1.1 405") && post.contains("Allow: GET, HEAD"));
        assert!(respond("GET / HTTP/1.1\r\nBad Header\r\n\r\n", true).starts_with("HTTP/1.1 400"));
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(respond(&many, true).starts_with("HTTP/1.1 431"));
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert!(respond(&long, true).starts_with("HTTP/1.1 431"));
        assert_eq!(
            answer(b"GET / HTTP/1.1\r\nHost:", &SITE, true),
            Answer::Incomplete
        );
    }

    #[test]
    fn the_upgrade_checks_the_origin() {
        let with = |origin: &str| format!("{UPGRADE}{origin}\r\nEXTRA");
        match answer(
            with("Origin: https://127.0.0.1:50445\r\n").as_bytes(),
            &SITE,
            true,
        ) {
            Answer::Upgrade { response, rest } => {
                let response = String::from_utf8(response).unwrap();
                // RFC 6455's own example key and answer.
                assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
                assert_eq!(rest, b"EXTRA");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            answer(with("").as_bytes(), &SITE, true),
            Answer::Upgrade { .. }
        ));
        for origin in [
            "Origin: https://evil.example\r\n",
            "Origin: http://127.0.0.1:50445\r\n",
            "Origin: null\r\n",
        ] {
            let refused = respond(&with(origin), true);
            assert!(refused.starts_with("HTTP/1.1 403"), "{origin}: {refused}");
        }
        let plain = respond(
            &format!("{UPGRADE}Origin: https://127.0.0.1:50445\r\n\r\n"),
            false,
        );
        assert!(plain.starts_with("HTTP/1.1 403"), "the scheme counts");
        let old = UPGRADE.replace("Version: 13", "Version: 8");
        assert!(respond(&format!("{old}\r\n"), true).contains("Sec-WebSocket-Version: 13"));
        let plain_get = "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(respond(plain_get, true).starts_with("HTTP/1.1 426"));
    }

    #[test]
    fn http_is_told_from_chat_frames_by_its_first_bytes() {
        assert_eq!(looks_like_http(b"GET / HTTP/1.1"), Some(true));
        assert_eq!(looks_like_http(b"GE"), None);
        assert_eq!(looks_like_http(b"OPTIONS "), Some(true));
        assert_eq!(looks_like_http(b"{\"type\""), Some(false));
        assert_eq!(looks_like_http(b"\n"), Some(false));
        assert_eq!(looks_like_http(b"GET/"), Some(false));
        assert_eq!(looks_like_http(b"hello"), Some(false));
    }
}
