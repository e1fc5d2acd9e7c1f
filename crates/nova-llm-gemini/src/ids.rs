//! Function-call ids: the API may send none, so the driver makes them, stable within a
//! reply, in a form no Gemini id takes, and never sends them back.

/// What every made-up id starts with.
const PREFIX: &str = "gemini-call-";

/// The id of the reply's call number `index` when the API sent none.
pub(crate) fn made_up(index: usize) -> String {
    format!("{PREFIX}{index}")
}

/// Whether `id` was made up by this driver (and so is not the API's to see).
pub(crate) fn is_made_up(id: &str) -> bool {
    id.strip_prefix(PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_ids_are_told_apart() {
        assert_eq!(made_up(2), "gemini-call-2");
        assert!(is_made_up(&made_up(0)));
        for real in ["a1b2c3d4", "gemini-call-", "gemini-call-x", "call_0"] {
            assert!(!is_made_up(real), "{real}");
        }
    }
}
