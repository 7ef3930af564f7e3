//! What every binary (`elig`, `eligd`, `elig-loader`) prints for an error:
//! here because all three depend on this crate, and nothing heavier.

/// An error and its causes on one line, `outer: cause: cause`, each cause
/// once: many messages already include their cause (`{path}: {source}`), and
/// printing the chain as well repeated it two or three times.
pub fn error_report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let part = c.to_string();
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}
