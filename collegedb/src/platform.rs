//! The seams to the host: time and randomness.
//!
//! On `wasm32-unknown-unknown` `SystemTime::now()` panics and there is no OS
//! randomness, so both come from the JS runtime there (`Date.now()`,
//! `crypto.getRandomValues` through getrandom's JS support).

/// Milliseconds since the Unix epoch.
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// A uniformly random `u64`.
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // The OS or JS source only fails when the platform has none at all, which
    // no supported target lacks; a zero seed then still places keys validly.
    let _ = getrandom::getrandom(&mut bytes);
    u64::from_le_bytes(bytes)
}
