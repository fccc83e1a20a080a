//! A TCP relay that delays every chunk the server sends, in front of a real
//! lab server: it widens the window between "the write landed on the
//! server" and "the probe saw the reply" from microseconds to a fixed delay,
//! so a test can interrupt a write probe exactly there. The bytes are not
//! touched (TLS passes through; the lab certificate names the address, not
//! the port, so it still verifies).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::{Run, Sandbox, BIN};

pub struct SlowLink {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl SlowLink {
    /// Listens on `bind_ip` (an ephemeral port) and relays to `upstream`,
    /// holding each server-to-client chunk for `delay`.
    pub fn start(bind_ip: &str, upstream: SocketAddr, delay: Duration) -> SlowLink {
        let listener = TcpListener::bind((bind_ip, 0)).expect("bind the relay");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        pump(
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            None,
                        );
                        pump(server, client, Some(delay));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SlowLink { addr, stop }
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, delay: Option<Duration>) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(d) = delay {
                        thread::sleep(d);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Starts `services --format json` on `yaml` in the background.
pub fn spawn_services(sb: &Sandbox, yaml: &str, extra: &[&str], env: &[(&str, &str)]) -> Child {
    let cfg = sb.write("perimeter.yml", yaml);
    let mut cmd = Command::new(BIN);
    cmd.arg("services")
        .arg("--config")
        .arg(&cfg)
        .args(["--format", "json", "--no-progress"])
        .args(extra)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start airgap-verify")
}

/// Sends `signal` (`INT`, `TERM`) to the child and collects what it printed.
pub fn interrupt(child: Child, signal: &str) -> Run {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{signal} failed");
    Run::from(child.wait_with_output().expect("wait for airgap-verify"))
}

/// Polls `cond` every 5 ms until it holds; panics after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}
