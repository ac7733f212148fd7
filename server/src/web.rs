//! The browser client: the files of `server/web/`, embedded in the binary
//! (no CDN, nothing fetched: it works on a LAN with no internet), served by
//! the framework's HTTP side (`framework/web/`).

use std::net::SocketAddr;
use std::sync::OnceLock;

use include_dir::{include_dir, Dir};

use crate::framework::{Asset, Site};
use crate::platform;

static FILES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// The page opens its WebSocket here.
pub const SOCKET_PATH: &str = "/ws";

/// The site: every file of `server/web/` but its README, at `/<name>`.
pub fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let assets: Vec<Asset> = FILES
            .files()
            .filter_map(|file| {
                let name = file.path().to_str()?;
                let content_type = content_type(name)?;
                Some(Asset {
                    path: format!("/{name}").leak(),
                    content_type,
                    body: file.contents(),
                })
            })
            .collect();
        Site {
            assets: assets.leak(),
            socket_path: SOCKET_PATH,
        }
    })
}

/// The types the page uses; anything else (the README) is not served.
fn content_type(name: &str) -> Option<&'static str> {
    Some(match name.rsplit_once('.')?.1 {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

/// The address to open in a browser: the listening address, or this
/// machine's name when it listens on every interface.
pub fn url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = if addr.ip().is_unspecified() {
        platform::hostname().unwrap_or_else(|| "localhost".into())
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("{scheme}://{host}:{}/", addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_embedded_and_the_readme_is_not_served() {
        let site = site();
        assert!(site.assets.iter().any(|a| a.path == "/index.html"));
        assert!(site.assets.iter().all(|a| !a.path.ends_with(".md")));
    }

    #[test]
    fn urls() {
        assert_eq!(
            url("127.0.0.1:50445".parse().unwrap(), true),
            "https://127.0.0.1:50445/"
        );
        assert_eq!(url("[::1]:80".parse().unwrap(), false), "http://[::1]:80/");
    }
}
