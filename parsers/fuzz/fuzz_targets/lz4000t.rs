#![no_main]

use foodgate_parsers::Protocol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| foodgate_fuzz::check_decoder(Protocol::Lz4000t, data));
