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
use std::sync::{Mutex, MutexGuard};

/// The paths to remove on a signal. One per process ([`REGISTRY`]); the
/// tests make their own, so a test's removal never touches the paths of
/// tests running beside it.
struct Registry {
    paths: Mutex<Vec<(u64, PathBuf)>>,
    next: AtomicU64,
}

static REGISTRY: Registry = Registry::new();
/// How many probe runs currently handle SIGINT and SIGTERM themselves.
static PROBES_HANDLE: AtomicUsize = AtomicUsize::new(0);
static WATCHING: AtomicBool = AtomicBool::new(false);

/// A registered path; dropping it unregisters (it does not remove: the
/// owner does that, and may report a failure to).
#[must_use = "the path is unregistered when this is dropped"]
pub struct Registered {
    id: u64,
    registry: &'static Registry,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.paths().retain(|(id, _)| *id != self.id);
    }
}

impl Registry {
    const fn new() -> Registry {
        Registry {
            paths: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        }
    }

    fn paths(&self) -> MutexGuard<'_, Vec<(u64, PathBuf)>> {
        // A panic elsewhere while the list was held leaves it whole (every
        // change is one push or one retain), so a poisoned lock is still used.
        self.paths.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&'static self, list: &mut Vec<(u64, PathBuf)>, path: &Path) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        list.push((id, path.to_path_buf()));
        Registered { id, registry: self }
    }

    /// A path that is already there (the tests'): the pass itself only
    /// registers what [`create`] makes, leaving no moment where a path it
    /// made exists unregistered.
    #[cfg(test)]
    fn register(&'static self, path: &Path) -> Registered {
        self.push(&mut self.paths(), path)
    }

    fn create<T>(
        &'static self,
        path: &Path,
        make: impl FnOnce(&Path) -> std::io::Result<T>,
    ) -> std::io::Result<(T, Registered)> {
        let mut list = self.paths();
        let made = make(path)?;
        Ok((made, self.push(&mut list, path)))
    }

    /// Removes every registered path (best effort; a folder still being
    /// written to is retried a few times) and returns the list still held:
    /// until it is dropped, [`Registry::create`] waits and creates nothing.
    fn remove_all(&self) -> MutexGuard<'_, Vec<(u64, PathBuf)>> {
        let list = self.paths();
        for (_, p) in list.iter() {
            for _ in 0..20 {
                let r = match std::fs::symlink_metadata(p) {
                    Err(_) => break, // gone (or never created)
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
                    Ok(_) => std::fs::remove_file(p),
                };
                if r.is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        list
    }
}

/// Creates `path` with `make` and registers it, as one step for the signal
/// watcher: a signal that arrives meanwhile waits for `make` to return, then
/// removes the path. `make` fails when the path is already there (it must
/// create it new: `create_dir`, `create_new`), and a path it did not create
/// is never registered, so never removed. Once the watcher has begun to
/// remove the registered paths, `make` is no longer called: the call waits
/// for the process to exit, so nothing is created behind the removal.
pub fn create<T>(
    path: &Path,
    make: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<(T, Registered)> {
    REGISTRY.create(path, make)
}

/// Removes every registered path and ends the process with `code`, holding
/// the list to the end: a path being created is waited for, and none is
/// created once the removal has begun (it would outlive the process).
fn remove_all_and_exit(code: i32, signal: &str) -> ! {
    let _held = REGISTRY.remove_all();
    eprintln!("airgap-verify: interrupted by {signal}; no report written");
    std::process::exit(code)
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
                    remove_all_and_exit(code, if code == 130 { "SIGINT" } else { "SIGTERM" });
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

    /// A registry of the test's own (leaked: a `Registered` names a
    /// registry that lives as long as the process).
    fn own_registry() -> &'static Registry {
        Box::leak(Box::new(Registry::new()))
    }

    fn base(test: &str) -> PathBuf {
        let base = std::env::temp_dir().join(format!("agv-scratch-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        base
    }

    #[test]
    fn remove_all_removes_registered_files_and_folders_only() {
        let registry = own_registry();
        let base = base("only");
        let dir = base.join("d");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f"), "x").unwrap();
        let file = base.join("f.tmp");
        std::fs::write(&file, "x").unwrap();
        let kept = base.join("kept");
        std::fs::write(&kept, "x").unwrap();
        let _a = registry.register(&dir);
        let _b = registry.register(&file);
        {
            let _c = registry.register(&kept);
        }
        // Made by `create`, and a path `create` did not make.
        let ((), _d) = registry
            .create(&base.join("made"), |p| std::fs::create_dir(p))
            .unwrap();
        let err = registry
            .create(&kept, |p| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(p)
            })
            .err()
            .expect("kept is already there");
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        drop(registry.remove_all());
        assert!(!dir.exists() && !file.exists() && !base.join("made").exists());
        assert!(
            kept.exists(),
            "an unregistered path, or one create did not make, was removed"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// The race a Git bundle check interrupted early once lost: the signal
    /// came after the scratch folder was made and before it was registered,
    /// or while its subfolders were being made, and the folder outlived
    /// the run. Here the removal starts while `make` is half done; it must
    /// wait, then remove all of it.
    #[test]
    fn a_removal_during_a_creation_waits_for_it_then_removes_it() {
        let registry = own_registry();
        let base = base("during");
        let dir = base.join("gitbundle-1-0");
        let (half_done_tx, half_done_rx) = std::sync::mpsc::channel();
        let creator = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                registry
                    .create(&dir, |p| {
                        std::fs::create_dir(p)?;
                        half_done_tx.send(()).unwrap();
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        std::fs::create_dir_all(p.join("objects/pack"))
                    })
                    .unwrap()
            })
        };
        half_done_rx.recv().unwrap();
        assert!(dir.exists());
        let held = registry.remove_all();
        assert!(!dir.exists(), "the folder being made outlived the removal");
        drop(held);
        let ((), _registered) = creator.join().unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// Once the removal has begun (the signal watcher then exits), a path
    /// not yet made is not made at all: it would outlive the process.
    #[test]
    fn nothing_is_created_while_the_removal_holds_the_list() {
        let registry = own_registry();
        let base = base("after");
        let dir = base.join("gitbundle-1-1");
        let held = registry.remove_all();
        let creator = {
            let dir = dir.clone();
            std::thread::spawn(move || registry.create(&dir, |p| std::fs::create_dir(p)))
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!dir.exists(), "a path was made after the removal began");
        drop(held);
        let ((), _registered) = creator.join().unwrap().unwrap();
        assert!(dir.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
