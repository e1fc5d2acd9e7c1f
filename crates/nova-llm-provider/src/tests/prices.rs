//! The price table: lookups, snapshots, overrides.

use nova_llm_core::Usage;

use crate::{PRICE_TABLE_VERSION, Price, PriceTable};

#[test]
fn dated_snapshots_find_their_model_and_nothing_else_does() {
    let t = PriceTable::builtin();
    assert_eq!(t.version(), PRICE_TABLE_VERSION);
    let mini = t.get("gpt-4o-mini").unwrap();
    assert_eq!(t.get("gpt-4o-mini-2024-07-18"), Some(mini));
    assert_eq!(t.get("gpt-4o-2024-08-06"), t.get("gpt-4o"));
    assert_ne!(t.get("gpt-4o"), Some(mini));
    assert_eq!(t.get("gpt-4-0613"), t.get("gpt-4"));
    assert_eq!(t.get("gpt-4.1-2025-04-14"), t.get("gpt-4.1"));
    let haiku = t.get("claude-haiku-4-5").unwrap();
    assert_eq!(t.get("claude-haiku-4-5-20251001"), Some(haiku));
    // A version number is not a date: an unlisted version has no price, rather than the
    // price of an older model (Opus 4 costs three times what Opus 4.5 does).
    assert_eq!(t.get("claude-opus-4-9"), None);
    assert_ne!(t.get("claude-opus-4-5"), t.get("claude-opus-4"));
    assert_eq!(t.get("gpt-4o-08-06"), None);
    // Variants are not priced as their base model.
    assert_eq!(t.get("gpt-4o-audio-preview"), None);
    assert_eq!(t.get("gpt-4-32k"), None);
    assert_eq!(t.get("gpt-9"), None);
    assert_eq!(t.get(""), None);
    assert_eq!(t.get("-"), None);
}

#[test]
fn cost_charges_cached_input_at_its_own_rate() {
    let p = Price::per_million(2.0, 8.0).with_cached_input(0.5);
    let u = Usage::new(1_000, 500).with_cache_read(400);
    let want = (600.0 * 2.0 + 400.0 * 0.5 + 500.0 * 8.0) / 1e6;
    assert!((p.cost(&u) - want).abs() < 1e-15);
    // More cached tokens than input tokens (a confused server) never goes negative.
    let odd = Usage::new(10, 0).with_cache_read(50);
    assert!((p.cost(&odd) - 10.0 * 0.5 / 1e6).abs() < 1e-15);
    assert_eq!(Price::per_million(1.0, 1.0).cached_input_per_million, 1.0);
}

#[test]
fn anthropic_cache_writes_cost_more_and_reads_less_than_input() {
    let t = PriceTable::builtin();
    // Claude Sonnet 4.6: $3 input, $3.75 cache write, $0.30 cache read, $15 output.
    // 10,000 prompt tokens: 6,000 read from the cache, 3,000 written to it, 1,000 plain.
    let u = Usage::new(10_000, 2_000)
        .with_cache_read(6_000)
        .with_cache_write(3_000);
    let want = (1_000.0 * 3.0 + 6_000.0 * 0.30 + 3_000.0 * 3.75 + 2_000.0 * 15.0) / 1e6;
    let got = t.cost("claude-sonnet-4-6", &u).unwrap();
    assert!((got - want).abs() < 1e-15, "{got} != {want}");
    // The same prompt with no cache at all.
    let plain = t
        .cost("claude-sonnet-4-6", &Usage::new(10_000, 2_000))
        .unwrap();
    assert!((plain - (10_000.0 * 3.0 + 2_000.0 * 15.0) / 1e6).abs() < 1e-15);
    // A write with no price of its own costs what input costs (OpenAI's automatic cache).
    let p = Price::per_million(2.0, 8.0);
    let written = Usage::new(1_000, 0).with_cache_write(1_000);
    assert!((p.cost(&written) - 1_000.0 * 2.0 / 1e6).abs() < 1e-15);
    // Reads and writes beyond the input (a confused server) never go negative.
    let odd = Usage::new(10, 0).with_cache_read(6).with_cache_write(50);
    let p = Price::per_million(1.0, 1.0)
        .with_cached_input(0.5)
        .with_cache_write(2.0);
    assert!((p.cost(&odd) - (6.0 * 0.5 + 4.0 * 2.0) / 1e6).abs() < 1e-15);
}

#[test]
fn gemini_pro_prompts_over_200k_tokens_are_priced_at_the_long_rates() {
    let t = PriceTable::builtin();
    // Gemini 2.5 Pro: $1.25 in, $0.125 cached, $10 out; over 200k: $2.50, $0.25, $15.
    let short = Usage::new(200_000, 1_000).with_cache_read(100_000);
    let want = (100_000.0 * 1.25 + 100_000.0 * 0.125 + 1_000.0 * 10.0) / 1e6;
    assert!((t.cost("gemini-2.5-pro", &short).unwrap() - want).abs() < 1e-12);
    let long = Usage::new(200_001, 1_000).with_cache_read(100_000);
    let want = (100_001.0 * 2.50 + 100_000.0 * 0.25 + 1_000.0 * 15.0) / 1e6;
    assert!((t.cost("gemini-2.5-pro", &long).unwrap() - want).abs() < 1e-12);
    // Flash has one price whatever the length.
    let flash = t
        .cost("gemini-2.5-flash", &Usage::new(1_000_000, 0))
        .unwrap();
    assert!((flash - 0.30).abs() < 1e-12);
    // A table entry of one's own can have long-prompt rates too.
    let mine = Price::per_million(1.0, 2.0)
        .with_long_prompt(crate::LongPrompt::new(10, 3.0, 4.0).with_cached_input(0.5));
    assert!((mine.cost(&Usage::new(10, 10)) - 30.0 / 1e6).abs() < 1e-15);
    assert!(
        (mine.cost(&Usage::new(11, 10).with_cache_read(1)) - (30.0 + 0.5 + 40.0) / 1e6).abs()
            < 1e-15
    );
}

#[test]
fn tables_can_be_emptied_overridden_and_labelled() {
    let t = PriceTable::empty();
    assert_eq!(t.cost("gpt-4o", &Usage::new(1, 1)), None);
    assert_eq!(t.version(), "custom");
    let mut t = PriceTable::builtin().with_version("ours-2026-11");
    t.insert("gpt-4o", Price::per_million(1.0, 1.0));
    assert_eq!(t.cost("gpt-4o", &Usage::new(500_000, 500_000)), Some(1.0));
    assert_eq!(t.version(), "ours-2026-11");
    // The events layer prices with the table it was given.
    let layer = crate::events::EventsLayer::new(std::sync::Arc::new(t), false);
    assert_eq!(layer.prices().version(), "ours-2026-11");
    assert_eq!(
        layer.prices().cost("gpt-4o", &Usage::new(500_000, 500_000)),
        Some(1.0)
    );
}
