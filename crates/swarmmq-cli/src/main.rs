//! The `swarmmq` binary.
fn main() {}
