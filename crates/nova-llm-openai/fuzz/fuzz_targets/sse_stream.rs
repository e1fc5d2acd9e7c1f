//! Feeds arbitrary bytes to the stream decoder, split at a point the input chooses, and
//! checks the decoder's contract: no panic, nothing after an error, the same events however
//! the bytes are split.
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use nova_llm_openai::internals::ChunkDecoder;

fn run(pieces: &[&[u8]]) -> Vec<String> {
    let mut d = ChunkDecoder::new(Default::default(), 4096);
    let mut out = VecDeque::new();
    for p in pieces {
        d.feed(p, &mut out);
    }
    d.end(&mut out);
    let items: Vec<String> = out.iter().map(|i| format!("{i:?}")).collect();
    if let Some(pos) = out.iter().position(Result::is_err) {
        assert_eq!(pos, out.len() - 1, "an error item must be the last one");
    }
    items
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(body.len());
    let whole = run(&[body]);
    let split = run(&[&body[..cut], &body[cut..]]);
    assert_eq!(whole, split, "splitting the input changed the events");
});
