//! Feeds arbitrary JSON requests to the cache-key computation and checks its contract:
//! no panic, equal requests give equal keys, a serde round trip (which may reorder object
//! fields) that gives back an equal request keeps the key, and a chat key never equals the
//! completion key of the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_llm_core::ChatRequest;
use nova_llm_provider::Operation;
use nova_llm_provider::cache::CacheKey;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<ChatRequest>(data) else {
        return;
    };
    let key = CacheKey::new("driver", Operation::Chat, &request);
    assert_eq!(
        key,
        CacheKey::new("driver", Operation::Chat, &request.clone())
    );
    // A round trip that gives back an equal request keeps the key. (One that does not is
    // another request: a non-finite float, for one, serializes as null and comes back
    // unset; such a request is refused before it is sent.)
    if let Ok(json) = serde_json::to_vec(&request)
        && let Ok(back) = serde_json::from_slice::<ChatRequest>(&json)
        && back == request
    {
        assert_eq!(
            key,
            CacheKey::new("driver", Operation::Chat, &back),
            "round trip changed the key"
        );
    }
    assert_ne!(
        key,
        CacheKey::new("driver", Operation::Completion, &request)
    );
    assert_ne!(key, CacheKey::new("other", Operation::Chat, &request));
});
