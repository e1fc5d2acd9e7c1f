//! `cargo xtask instructions`: instructions per call of each client of the load benchmark,
//! counted by valgrind's callgrind.
//!
//! On a shared, virtualised machine the load benchmark's times move by ±20 % from run to
//! run, far more than the few per cent a change to the provider makes. The number of
//! instructions a call executes hardly moves (under 1 %), so it can show such a change.
//! Each client runs a workload twice, with `n` and `2n` calls, in a child process under
//! callgrind (one tokio worker); the difference divided by `n` is the cost of one call
//! without the fixed costs (start-up, connections, warm-up).
//!
//! It counts the client's user-space instructions only: not the kernel's work, nor cache
//! misses or waiting. Two things weigh more under callgrind than on the machine: it runs
//! SHA-256 in software (the provider's cache key; the CPU's SHA extensions do it several
//! times faster), and it counts a large `rep movsb` copy byte by byte.

use std::path::Path;
use std::process::Command;

/// What is counted: (file name, client of `tests/load`, its layers left out). The provider
/// is also counted without its cache, which is most of what it adds to a plain call.
const CLIENTS: [(&str, &str, Option<&str>); 4] = [
    ("driver", "driver", None),
    ("provider", "provider", None),
    ("provider-no-cache", "provider", Some("NOVA_LOAD_NO_CACHE")),
    ("async-openai", "async-openai", None),
];

/// (workload index in `tests/load`, name, calls in the smaller run, events per call).
const WORKLOADS: [(usize, &str, usize, usize); 3] = [
    (0, "sequential chats", 1_000, 0),
    (1, "chats, 64 in flight", 1_000, 0),
    (3, "streams of 200 chunks, 32 in flight", 100, 200),
];

/// Counts and prints the table. Needs valgrind.
pub(crate) fn run(root: &Path, mut cargo: Command) -> Result<(), String> {
    let valgrind = Command::new("valgrind").arg("--version").output();
    if !valgrind.is_ok_and(|o| o.status.success()) {
        return Err("valgrind is not installed (apt-get install valgrind)".into());
    }
    let target = root.join("target").join("load");
    cargo
        .args([
            "build",
            "--release",
            "--manifest-path",
            "tests/load/Cargo.toml",
        ])
        .env("CARGO_TARGET_DIR", &target);
    crate::run("build tests/load (release)", cargo)?;
    let exe = target.join("release").join("nova-llm-load");
    // Relative to the root, where the children run: no spaces to split on.
    let out = Path::new("target").join("instructions");
    std::fs::create_dir_all(root.join(&out)).map_err(|e| format!("{}: {e}", out.display()))?;

    let mut rows = Vec::new();
    for (w, name, n, events) in WORKLOADS {
        let mut per_call = [0.0; 4];
        for (c, (label, client, without)) in CLIENTS.iter().enumerate() {
            let mut totals = [0_u64; 2];
            for (i, calls) in [n, 2 * n].into_iter().enumerate() {
                let file = out.join(format!("{label}-{w}-{calls}.callgrind"));
                let mut child = Command::new(&exe);
                if let Some(var) = without {
                    child.env(var, "1");
                }
                let status = child
                    .current_dir(root)
                    .env("NOVA_LOAD_ONLY", format!("{client}:{w}"))
                    .env("NOVA_LOAD_ROUNDS", "1")
                    .env("NOVA_LOAD_WORKERS", "1")
                    .env("NOVA_LOAD_REQUESTS", calls.to_string())
                    .env(
                        "NOVA_LOAD_WRAP",
                        format!(
                            "valgrind --tool=callgrind --callgrind-out-file={}",
                            file.display()
                        ),
                    )
                    .output()
                    .map_err(|e| format!("could not start {}: {e}", exe.display()))?;
                if !status.status.success() {
                    return Err(format!(
                        "{label} on {name} failed: {}",
                        String::from_utf8_lossy(&status.stderr)
                    ));
                }
                let text = std::fs::read_to_string(root.join(&file))
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                totals[i] = total_instructions(&text)
                    .ok_or_else(|| format!("{}: no `totals:` line", file.display()))?;
                eprintln!(
                    "{label:<17} {name:<40} {calls:>5} calls: {} instructions",
                    totals[i]
                );
            }
            per_call[c] = per_call_of(totals[0], totals[1], n);
        }
        rows.push((name, events, per_call));
    }
    println!("{}", table(&rows));
    Ok(())
}

/// The total of callgrind's `totals:` (or `summary:`) line.
fn total_instructions(callgrind_out: &str) -> Option<u64> {
    callgrind_out
        .lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Instructions of one call: the extra calls of the larger run, over their number.
fn per_call_of(small: u64, large: u64, n: usize) -> f64 {
    (large as f64 - small as f64) / n as f64
}

fn table(rows: &[(&str, usize, [f64; 4])]) -> String {
    let mut s = String::from(
        "| workload | driver | provider | provider without cache | async-openai | provider − driver | driver / provider | driver / provider without cache | async-openai / driver |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, events, [d, p, q, a]) in rows {
        let unit = |x: f64| {
            if *events > 0 {
                format!("{:.0} ({:.0}/event)", x, x / *events as f64)
            } else {
                format!("{x:.0}")
            }
        };
        s.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.2} |\n",
            unit(*d),
            unit(*p),
            unit(*q),
            unit(*a),
            unit(p - d),
            d / p,
            d / q,
            a / d,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_read_from_either_line() {
        let out = "version: 1\ncmd: x\nevents: Ir\nsummary: 1234\n\nfn=main\n0 1\ntotals: 1234\n";
        assert_eq!(total_instructions(out), Some(1234));
        assert_eq!(total_instructions("events: Ir\nsummary: 77\n"), Some(77));
        assert_eq!(total_instructions("events: Ir\n"), None);
        assert_eq!(total_instructions("totals: many\n"), None);
    }

    #[test]
    fn a_call_costs_the_difference_over_the_extra_calls() {
        assert_eq!(per_call_of(1_000_000, 3_000_000, 1_000), 2_000.0);
        // A larger run can (in principle) count fewer: shown, not hidden.
        assert_eq!(per_call_of(10, 0, 5), -2.0);
    }

    #[test]
    fn the_table_shows_ratios_and_per_event_figures_for_streams() {
        let t = table(&[
            ("plain", 0, [100.0, 125.0, 104.0, 110.0]),
            ("stream", 200, [20_000.0, 24_000.0, 22_000.0, 40_000.0]),
        ]);
        assert!(
            t.contains("| plain | 100 | 125 | 104 | 110 | 25 | 0.800 | 0.962 | 1.10 |"),
            "{t}"
        );
        assert!(
            t.contains("| stream | 20000 (100/event) | 24000 (120/event) | 22000 (110/event) | 40000 (200/event) | 4000 (20/event) | 0.833 | 0.909 | 2.00 |"),
            "{t}"
        );
    }
}
