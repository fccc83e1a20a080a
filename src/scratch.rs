//! Local scratch paths (a report's temporary file, the Git bundle check's
//! scratch folder), removed on every exit path, SIGINT and SIGTERM included.
//!
//! Guarantees:
//! - the owner of a scratch path removes it when done (RAII); this registry
//!   only covers the exits that skip destructors: once [`watch_signals`] is
//!   installed, SIGINT or SIGTERM removes every registered path, then the
//!   process exits with 130 or 143, as the shell reports a death by that
//!   signal;
//! - while the probes run they own the signals (their interrupt removes
//!   what they wrote remotely and still writes the partial report, see
//!   `crate::probe`): the watcher then leaves the signal to them, and the
//!   report files are completed by that normal exit;
//! - a scratch folder is placed in the first of [`parent_candidates`] where
//!   it can be created: `$TMPDIR` when set, `/tmp`, `/var/tmp`, then the
//!   current directory. A host (or an empty chroot) without `/tmp` still
//!   gets one; when none is writable, the caller reports which places it
//!   tried, never panics.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

static PATHS: Mutex<Vec<(u64, PathBuf)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
/// How many probe runs currently handle SIGINT and SIGTERM themselves.
static PROBES_HANDLE: AtomicUsize = AtomicUsize::new(0);
static WATCHING: AtomicBool = AtomicBool::new(false);

/// A registered path; dropping it unregisters (it does not remove: the
/// owner does that, and may report a failure to).
#[must_use = "the path is unregistered when this is dropped"]
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut p) = PATHS.lock() {
            p.retain(|(id, _)| *id != self.0);
        }
    }
}

/// Registers `path` (a file or a folder) for removal on a signal.
pub fn register(path: &Path) -> Registered {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut p) = PATHS.lock() {
        p.push((id, path.to_path_buf()));
    }
    Registered(id)
}

/// Removes every registered path (best effort; a folder still being
/// written to is retried a few times).
pub fn remove_all() {
    let paths: Vec<PathBuf> = match PATHS.lock() {
        Ok(p) => p.iter().map(|(_, p)| p.clone()).collect(),
        Err(_) => return,
    };
    for p in paths {
        for _ in 0..20 {
            let r = match std::fs::symlink_metadata(&p) {
                Err(_) => break, // gone (or never created)
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
                Ok(_) => std::fs::remove_file(&p),
            };
            if r.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Held while a probe run handles SIGINT and SIGTERM itself.
pub struct ProbesHandleSignals(());

impl ProbesHandleSignals {
    pub fn claim() -> ProbesHandleSignals {
        PROBES_HANDLE.fetch_add(1, Ordering::SeqCst);
        ProbesHandleSignals(())
    }
}

impl Drop for ProbesHandleSignals {
    fn drop(&mut self) {
        PROBES_HANDLE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// From now on, SIGINT and SIGTERM remove the registered paths and end the
/// process (130, 143), except while the probes handle them. Installed once;
/// later calls do nothing. A command that handles signals its own way for
/// its whole length (`listen`) does not call it.
pub fn watch_signals() {
    if WATCHING.swap(true, Ordering::SeqCst) {
        return;
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            else {
                let _ = ready_tx.send(());
                return; // the default action stays: the process dies
            };
            rt.block_on(async move {
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    let _ = ready_tx.send(());
                    return;
                };
                let _ = ready_tx.send(());
                loop {
                    let code = tokio::select! {
                        _ = int.recv() => 130,
                        _ = term.recv() => 143,
                    };
                    if PROBES_HANDLE.load(Ordering::SeqCst) > 0 {
                        continue;
                    }
                    remove_all();
                    eprintln!(
                        "airgap-verify: interrupted by {}; no report written",
                        if code == 130 { "SIGINT" } else { "SIGTERM" }
                    );
                    std::process::exit(code);
                }
            });
        });
    if spawned.is_ok() {
        // The handlers are in place before the run starts.
        let _ = ready_rx.recv();
    }
}

/// Where a scratch folder may be created, in the order to try: `$TMPDIR`
/// when set and not empty, `/tmp`, `/var/tmp`, then the current directory
/// (when it can be read). `std::env::temp_dir` alone would name `/tmp`
/// even where there is none (an empty chroot, a minimal container).
pub fn parent_candidates() -> Vec<PathBuf> {
    candidates_from(std::env::var_os("TMPDIR"), std::env::current_dir().ok())
}

fn candidates_from(tmpdir: Option<OsString>, cwd: Option<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let tmpdir = tmpdir.filter(|t| !t.is_empty()).map(PathBuf::from);
    let fixed = [PathBuf::from("/tmp"), PathBuf::from("/var/tmp")];
    for p in tmpdir.into_iter().chain(fixed).chain(cwd) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_tmpdir_tmp_var_tmp_then_the_current_directory() {
        let cwd = Some(PathBuf::from("/srv/run"));
        assert_eq!(
            candidates_from(Some("/scratch".into()), cwd.clone()),
            ["/scratch", "/tmp", "/var/tmp", "/srv/run"].map(PathBuf::from)
        );
        // Unset or empty TMPDIR: the fixed places, then the current directory.
        for t in [None, Some(OsString::new())] {
            assert_eq!(
                candidates_from(t, cwd.clone()),
                ["/tmp", "/var/tmp", "/srv/run"].map(PathBuf::from)
            );
        }
        // No duplicates; an unreadable current directory is left out.
        assert_eq!(
            candidates_from(Some("/tmp".into()), Some("/var/tmp".into())),
            ["/tmp", "/var/tmp"].map(PathBuf::from)
        );
        assert_eq!(
            candidates_from(None, None),
            ["/tmp", "/var/tmp"].map(PathBuf::from)
        );
    }

    #[test]
    fn remove_all_removes_registered_files_and_folders_only() {
        let base = std::env::temp_dir().join(format!("agv-scratch-{}", std::process::id()));
        let dir = base.join("d");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f"), "x").unwrap();
        let file = base.join("f.tmp");
        std::fs::write(&file, "x").unwrap();
        let kept = base.join("kept");
        std::fs::write(&kept, "x").unwrap();
        let _a = register(&dir);
        let _b = register(&file);
        {
            let _c = register(&kept);
        }
        remove_all();
        assert!(!dir.exists() && !file.exists());
        assert!(kept.exists(), "an unregistered path was removed");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
