//! Criterion benchmarks of the broker core.
fn main() {}
