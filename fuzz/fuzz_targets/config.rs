#![no_main]
//! See `swarmmq_fuzz::config` for the input format and the rules checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| swarmmq_fuzz::config::check_input(data));
