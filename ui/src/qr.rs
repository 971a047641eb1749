//! QR codes drawn on the server as inline SVG (no images, no scripts, no
//! styles): one `<path>` with a subpath per horizontal run of dark modules.

use std::fmt::Write as _;

use leptos::prelude::*;
use qrcode::{Color, EcLevel, QrCode};

/// The light margin around the code, in modules (the standard asks for 4).
const QUIET_ZONE: usize = 4;

/// Encodes `data` at medium error correction when it fits, else at low.
fn encode(data: &str) -> Option<QrCode> {
    QrCode::with_error_correction_level(data, EcLevel::M)
        .or_else(|_| QrCode::with_error_correction_level(data, EcLevel::L))
        .ok()
}

/// The side of the drawing in modules (quiet zone included) and the SVG path
/// data of the dark modules: `M x,y h len v1 h-len z` for each run in a row.
fn module_path(code: &QrCode) -> (usize, String) {
    let width = code.width();
    let colors = code.to_colors();
    let mut path = String::new();
    for (y, row) in colors.chunks(width).enumerate() {
        let mut x = 0;
        while x < width {
            if row[x] != Color::Dark {
                x += 1;
                continue;
            }
            let start = x;
            while x < width && row[x] == Color::Dark {
                x += 1;
            }
            let run = x - start;
            // Writing to a String cannot fail.
            let _ = write!(
                path,
                "M{},{}h{run}v1h-{run}z",
                start + QUIET_ZONE,
                y + QUIET_ZONE
            );
        }
    }
    (width + 2 * QUIET_ZONE, path)
}

/// `data` as a QR code in an inline `<svg role="img">` labelled `label`
/// (dark on white in both themes, as scanners expect), or `None` when it is
/// too long for a QR code.
pub(crate) fn qr_svg(data: &str, label: &'static str) -> Option<impl IntoView + use<>> {
    let code = encode(data)?;
    let (side, path) = module_path(&code);
    let view_box = format!("0 0 {side} {side}");
    let side = side.to_string();
    Some(view! {
        <svg class="qr" viewBox=view_box role="img" aria-label=label shape-rendering="crispEdges">
            <title>{label}</title>
            <rect class="qr-bg" width=side.clone() height=side fill="#ffffff"></rect>
            <path class="qr-fg" d=path fill="#000000"></path>
        </svg>
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(data: &str) -> String {
        Owner::new().with(|| {
            qr_svg(data, "QR code")
                .map(|view| view.to_html())
                .unwrap_or_default()
        })
    }

    #[test]
    fn a_short_code_is_version_1_with_its_quiet_zone() {
        let code = encode("HELLO").expect("fits");
        assert_eq!(code.width(), 21);
        let (side, path) = module_path(&code);
        assert_eq!(side, 29);
        // The top-left finder pattern: a run of 7 dark modules at the corner.
        assert!(path.starts_with("M4,4h7v1h-7z"), "{path}");
        // Every dark module is drawn, as runs.
        let dark = code
            .to_colors()
            .iter()
            .filter(|c| **c == Color::Dark)
            .count();
        let drawn: usize = path
            .split('h')
            .skip(1)
            .step_by(2)
            .map(|run| run.split('v').next().and_then(|n| n.parse::<usize>().ok()))
            .map(|n| n.expect("run length"))
            .sum();
        assert_eq!(drawn, dark, "{path}");
    }

    #[test]
    fn renders_an_accessible_svg_without_styles() {
        let html = render("sm1-abc");
        assert!(html.starts_with("<svg"), "{html}");
        assert!(html.contains(r#"role="img""#));
        assert!(html.contains(r#"aria-label="QR code""#));
        assert!(html.contains("<title>QR code</title>"));
        assert!(html.contains(r#"<path d="M4,4h7v1h-7z"#), "{html}");
        assert!(html.contains(r#"class="qr-fg""#));
        assert!(!html.contains("style"), "{html}");
        assert!(!html.contains("http"), "{html}");
    }

    #[test]
    fn a_long_invite_still_fits_and_too_long_data_gives_none() {
        // An invite with a 4096-bit key is about 1,200 characters.
        let invite = format!("sm1-{}", "A".repeat(1400));
        assert!(render(&invite).contains("<path"));
        assert!(render(&"x".repeat(5000)).is_empty());
    }
}
