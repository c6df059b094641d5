//! Compile-time behaviour of `#[derive(Sharded)]`: the errors it reports
//! (`tests/ui/*.rs` against their `.stderr`), and models that must compile
//! and run (`tests/ui/pass/*.rs`).
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test ui`,
//! then read every changed `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
