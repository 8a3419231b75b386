#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| foodgate_fuzz::rows::check_upload(data));
