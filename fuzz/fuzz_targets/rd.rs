#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| coap_proto::_internal::fuzz_rd::rd(data));
