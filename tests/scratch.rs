//! Temporary files are removed on every exit path, signals included: a Git
//! bundle check interrupted by SIGINT or SIGTERM while libgit2 indexes its
//! pack leaves no `gitbundle-*` folder behind.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::tarkit::RawTar;
use crate::harness::Sandbox;

/// A Git bundle of one commit holding 768 KiB of random bytes (an
/// incompressible pack, so the archive is fed in several chunks).
fn big_git_bundle(dir: &Path) -> Vec<u8> {
    let env = "GIT_CONFIG_NOSYSTEM=1 HOME=. GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t";
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mkdir -p repo && cd repo && {env} git init -q -b main && head -c 786432 /dev/urandom > blob.bin \
             && {env} git add . && {env} git commit -qm one && {env} git bundle create ../big.bundle --all 2>/dev/null"
        ))
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "git (scripts/test.sh installs it)");
    std::fs::read(dir.join("big.bundle")).unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

#[test]
fn an_interrupted_git_bundle_check_leaves_no_scratch_folder() {
    let sb = Sandbox::new("scratch::gitbundle");
    let bundle = big_git_bundle(&sb.dir);
    let tar = RawTar::new().file("git/stacks.bundle", &bundle).finish();
    let tmp = sb.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let fifo = sb.path(&format!("release-{signal}.tar"));
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let child = crate::harness::bundle_command(&fifo)
            .env("TMPDIR", &tmp)
            .spawn()
            .unwrap();
        // Half the archive: the pack is being indexed, the rest is awaited.
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        w.write_all(&tar[..tar.len() / 2]).unwrap();
        let started = Instant::now();
        while !entries(&tmp).iter().any(|n| n.starts_with("gitbundle-")) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the Git bundle check never created its scratch folder"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args([&format!("-{signal}"), pid.as_str()])
            .status()
            .unwrap()
            .success());
        let out = child.wait_with_output().unwrap();
        drop(w);
        assert_eq!(
            out.status.code(),
            Some(code),
            "SIG{signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            entries(&tmp),
            Vec::<String>::new(),
            "left behind after SIG{signal}"
        );
    }
}
