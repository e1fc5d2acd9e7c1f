//! Feeds arbitrary bytes to the chat and completion response decoders: every input must
//! give a response or a decode error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_llm_core::ErrorKind;
use nova_llm_openai::internals::{decode_chat, decode_completion};

fuzz_target!(|data: &[u8]| {
    if let Err(e) = decode_chat(data) {
        assert_eq!(e.kind(), ErrorKind::Decode);
    }
    if let Err(e) = decode_completion(data) {
        assert_eq!(e.kind(), ErrorKind::Decode);
    }
});
