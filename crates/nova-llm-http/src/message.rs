//! A service's error message, made fit for an error: one line, bounded.

/// Longest service message kept in an error (a proxy's HTML page can be megabytes).
pub const MAX_MESSAGE_CHARS: usize = 500;

/// `s` on one line (runs of whitespace, newlines included, become one space), cut after
/// [`MAX_MESSAGE_CHARS`] characters with an ellipsis.
///
/// ```
/// assert_eq!(nova_llm_http::one_line("a\n  b\tc"), "a b c");
/// ```
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_MESSAGE_CHARS + 4));
    let mut chars = 0;
    for word in s.split_whitespace() {
        if chars > 0 {
            out.push(' ');
            chars += 1;
        }
        for c in word.chars() {
            if chars >= MAX_MESSAGE_CHARS {
                out.truncate(out.trim_end().len());
                out.push('…');
                return out;
            }
            out.push(c);
            chars += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_or_multi_line_messages_are_folded_and_cut() {
        assert_eq!(one_line("a\n  b\tc"), "a b c");
        let long = "x".repeat(2000);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(cut.ends_with('…'));
        // Exactly at the limit: nothing was cut, so no ellipsis.
        let whole = "é".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(one_line(&whole), whole);
        assert_eq!(one_line("  "), "");
    }
}
