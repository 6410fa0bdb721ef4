#![no_main]

mod rows;

use crmgate::ingest::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rows::check(data, Format::Jsonl));
