#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // libgit2 writes its pack and index here; memory-backed when possible.
    let scratch = std::env::temp_dir().join(format!("airgap-fuzz-git-{}", std::process::id()));
    std::hint::black_box(airgap_verify::fuzzing::git_bundle(data, &scratch));
});
