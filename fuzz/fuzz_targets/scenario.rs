//! Scenario file loading (the simulator's TOML): parsing and validation never panic, and
//! a scenario that loads answers its derived queries consistently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsq_sim::scenario::{HostKind, Scenario};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(scenario) = Scenario::parse(text, "fuzz.toml") else {
        return;
    };
    let _ = scenario.end_ms();
    let _ = scenario.checks_determinism();
    let _ = scenario.enabled_invariants();
    for kind in [HostKind::Nsqd, HostKind::Nsqlookupd] {
        for name in scenario.host_names(kind) {
            assert!(
                scenario.host(&name).is_some(),
                "host {name:?} listed but not found"
            );
        }
    }
});
