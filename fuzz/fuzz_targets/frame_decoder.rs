#![no_main]
//! See `swarmmq_fuzz::frames` for the input format and the rules checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| swarmmq_fuzz::frames::check_stream(data));
