//! Ticket codes as QR codes, drawn server-side as SVG.
//!
//! The SVG is printed into the page unescaped, which is safe because its only input is the
//! code's bytes, encoded into black and white modules: no text of the code (or of anything
//! else) appears in the markup.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The QR code of `code` as an inline `<svg>` (no XML declaration), or `None` when the code
/// is too long for a QR code.
pub fn svg(code: &str) -> Option<String> {
    let qr = QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M).ok()?;
    let image = qr
        .render::<svg::Color<'_>>()
        .min_dimensions(160, 160)
        .quiet_zone(true)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    let start = image.find("<svg")?;
    Some(image[start..].replacen(
        "<svg",
        "<svg role=\"img\" aria-label=\"QR code of the ticket\" class=\"qr\"",
        1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_code_becomes_an_inline_svg_without_its_text() {
        let code = "6ZHVj9_guFr_uZg66XeYsA";

        let svg = svg(code).unwrap();

        assert!(svg.starts_with("<svg role=\"img\""));
        assert!(svg.contains("<path"));
        assert!(!svg.contains(code));
        assert!(!svg.contains("<?xml"));
    }
}
