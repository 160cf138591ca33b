//! The embedded assets: htmx, the client module and the stylesheet, compiled into the binary
//! and served under content-hashed paths (`/assets/app.3f9c0a1b2d.js`). A changed file gets a
//! new path, so each answer may be cached for a year as `immutable`; an old path answers 404.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// `Cache-Control` of every asset.
pub const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its file name under `/assets/`, hash included.
    pub name: String,
    /// Its content.
    pub body: &'static [u8],
    content_type: &'static str,
}

/// The paths pages link to.
#[derive(Debug)]
pub struct Assets {
    /// htmx 2 (vendored, pinned).
    pub htmx: String,
    /// The client module.
    pub app: String,
    /// The stylesheet.
    pub css: String,
    files: Vec<Asset>,
}

impl Assets {
    /// Every embedded file.
    pub fn files(&self) -> &[Asset] {
        &self.files
    }
}

fn asset(stem: &str, ext: &str, content_type: &'static str, body: &'static [u8]) -> Asset {
    let digest = Sha256::digest(body);
    let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    Asset {
        name: format!("{stem}.{hash}.{ext}"),
        body,
        content_type,
    }
}

/// The assets of this build, hashed once.
pub static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let files = vec![
        asset(
            "htmx-2.0.11",
            "js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/htmx.min.js"),
        ),
        asset(
            "app",
            "js",
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/app.js"),
        ),
        asset(
            "app",
            "css",
            "text/css; charset=utf-8",
            include_bytes!("../assets/app.css"),
        ),
    ];
    let path = |i: usize| format!("/assets/{}", files[i].name);
    Assets {
        htmx: path(0),
        app: path(1),
        css: path(2),
        files,
    }
});

/// `GET /assets/{file}`: an embedded file, cached for a year; 404 for any other name.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.files.iter().find(|a| a.name == file) else {
        return evently_core::Problem::not_found("no such asset").into_response();
    };
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_FOREVER),
            ),
        ],
        asset.body,
    )
        .into_response()
}
