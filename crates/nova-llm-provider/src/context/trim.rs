//! Trimming a dialog to a token budget without breaking it: system rows and the latest
//! turn stay, a tool call stays with its results, the oldest turns go first.

use nova_llm_core::{Dialog, ErrorKind, LlmError, Message, Role};

use super::counter::TokenCounter;

/// Which turns go first when a dialog is over its budget. System rows, hidden rows and the
/// latest user row (with everything after it) always stay.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrimStrategy {
    /// Drop the oldest turns first.
    #[default]
    DropOldest,
    /// Keep the first `first` and the last `last` turns as long as possible; drop the ones
    /// in between, oldest first (then, if still over, the first ones, then the last ones).
    KeepEnds {
        /// Turns kept at the start (after the system rows).
        first: usize,
        /// Turns kept at the end (before the latest user row).
        last: usize,
    },
}

/// A dialog cut to its budget.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct Trimmed {
    /// What is left, in the original order.
    pub dialog: Dialog,
    /// The rows that were dropped, in order (for a summary).
    pub dropped: Vec<Message>,
    /// Their tokens.
    pub dropped_tokens: usize,
    /// The tokens of what is left.
    pub tokens: usize,
}

/// Rows that go or stay together.
#[derive(Debug, Clone, Copy)]
struct Unit {
    start: usize,
    end: usize,
    tokens: usize,
    pinned: bool,
}

/// Trims `dialog` to `budget` tokens, counting each row once with `counter`.
///
/// # Errors
/// `ContextLengthExceeded` when the rows that must stay (system rows and the latest turn)
/// alone are over the budget.
///
/// ```
/// use nova_llm_core::Dialog;
/// use nova_llm_provider::context::{trim, Estimator, TrimStrategy};
///
/// let long = "word ".repeat(100); // 125 tokens with the estimator, 129 as a row
/// let dialog = Dialog::new()
///     .system("Be brief.")
///     .user(&long)
///     .assistant(&long)
///     .user("And now?");
/// let t = trim(&dialog, 150, &Estimator, TrimStrategy::DropOldest)?;
/// assert_eq!(t.dialog.len(), 3); // the oldest turn went
/// let t = trim(&dialog, 100, &Estimator, TrimStrategy::DropOldest)?;
/// assert_eq!(t.dialog.len(), 2); // the system row and the latest question
/// assert_eq!(t.dropped.len(), 2);
/// assert!(t.tokens <= 100);
/// # Ok::<(), nova_llm_core::LlmError>(())
/// ```
pub fn trim(
    dialog: &Dialog,
    budget: usize,
    counter: &dyn TokenCounter,
    strategy: TrimStrategy,
) -> Result<Trimmed, LlmError> {
    let counts: Vec<usize> = dialog
        .messages()
        .iter()
        .map(|m| counter.count_message(m))
        .collect();
    trim_counted(dialog, &counts, budget, strategy)
}

/// [`trim`] with the rows' token counts already known (`counts[i]` for row `i`), so a
/// conversation counts each row once in its life. Linear in the number of rows.
///
/// # Errors
/// As [`trim`]; `InvalidRequest` when `counts` does not match the dialog.
pub fn trim_counted(
    dialog: &Dialog,
    counts: &[usize],
    budget: usize,
    strategy: TrimStrategy,
) -> Result<Trimmed, LlmError> {
    let rows = dialog.messages();
    if counts.len() != rows.len() {
        return Err(LlmError::invalid_request(format!(
            "{} token counts for {} rows",
            counts.len(),
            rows.len()
        )));
    }
    let total: usize = counts.iter().sum();
    if total <= budget {
        return Ok(Trimmed {
            dialog: dialog.clone(),
            dropped: Vec::new(),
            dropped_tokens: 0,
            tokens: total,
        });
    }
    let mut units = units(rows, counts);
    let mut tokens = total;
    let order = drop_order(&units, strategy);
    let mut dropped_any = vec![false; units.len()];
    for i in order {
        if tokens <= budget {
            break;
        }
        tokens -= units[i].tokens;
        dropped_any[i] = true;
    }
    if tokens > budget {
        return Err(LlmError::new(
            ErrorKind::ContextLengthExceeded,
            format!(
                "the system rows and the latest turn alone need {tokens} tokens, more than the budget of {budget}"
            ),
        ));
    }
    let mut kept = Vec::with_capacity(rows.len());
    let mut dropped = Vec::new();
    let mut dropped_tokens = 0;
    for (u, gone) in units.iter_mut().zip(&dropped_any) {
        let slice = &rows[u.start..u.end];
        if *gone {
            dropped.extend(slice.iter().filter(|m| !m.hidden).cloned());
            // Hidden rows stay in the history even when their turn goes.
            kept.extend(slice.iter().filter(|m| m.hidden).cloned());
            dropped_tokens += u.tokens;
        } else {
            kept.extend(slice.iter().cloned());
        }
    }
    Ok(Trimmed {
        dialog: kept.into_iter().collect(),
        dropped,
        dropped_tokens,
        tokens,
    })
}

/// Groups rows: an assistant row that calls tools goes with the tool rows that answer it;
/// system rows, hidden rows, and the latest user row with everything after it are pinned.
fn units(rows: &[Message], counts: &[usize]) -> Vec<Unit> {
    let last_user = rows.iter().rposition(|m| m.role == Role::User && !m.hidden);
    let mut units = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let m = &rows[i];
        let mut end = i + 1;
        if m.role == Role::Assistant && !m.tool_calls.is_empty() {
            while end < rows.len() && (rows[end].role == Role::Tool || rows[end].hidden) {
                end += 1;
            }
        }
        let pinned = m.role == Role::System
            || (m.hidden && end == i + 1)
            || last_user.is_some_and(|u| i >= u);
        units.push(Unit {
            start: i,
            end,
            tokens: counts[i..end].iter().sum(),
            pinned,
        });
        i = end;
    }
    if last_user.is_none()
        && let Some(last) = units.last_mut()
    {
        last.pinned = true;
    }
    units
}

/// The droppable units, in the order they go.
fn drop_order(units: &[Unit], strategy: TrimStrategy) -> Vec<usize> {
    let droppable: Vec<usize> = (0..units.len()).filter(|&i| !units[i].pinned).collect();
    match strategy {
        TrimStrategy::DropOldest => droppable,
        TrimStrategy::KeepEnds { first, last } => {
            let n = droppable.len();
            let first = first.min(n);
            let last = last.min(n - first);
            let middle = &droppable[first..n - last];
            let mut order = middle.to_vec();
            order.extend_from_slice(&droppable[..first]);
            order.extend_from_slice(&droppable[n - last..]);
            order
        }
    }
}
