#![no_main]
//! See `swarmmq_fuzz::segments` for the input format and the rules checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| swarmmq_fuzz::segments::check_input(data));
