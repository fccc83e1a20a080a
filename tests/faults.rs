//! Faulty servers: small in-process fakes that misbehave on demand where a
//! real lab server cannot (issue #7, item 4). Each case runs `services`
//! against one fake with a short `--timeout` and asserts the exact finding
//! code, its target, and that the whole run ended within the deadline that
//! applies plus one second: a fault is reported, never waited out.
//!
//! The fakes listen on 127.0.0.1 only, serve a bounded number of
//! connections or datagrams, and die with the test process.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{Run, Sandbox, BIN};

/// Runs `services --config <yaml> --format json --timeout <timeout>`.
fn services(sb: &Sandbox, yaml: &str, timeout: &str, env: &[(&str, &str)]) -> (Run, Duration) {
    let cfg = sb.write("perimeter.yml", yaml);
    let mut cmd = Command::new(BIN);
    cmd.arg("services")
        .arg("--config")
        .arg(&cfg)
        .args(["--format", "json", "--no-progress", "--timeout", timeout])
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run airgap-verify");
    (Run::from(out), started.elapsed())
}

/// The acceptance bound: the deadline that applies plus one second.
fn within(elapsed: Duration, deadline: Duration, r: &Run) {
    eprintln!("elapsed {elapsed:?}, deadline {deadline:?}");
    assert!(
        elapsed <= deadline + Duration::from_secs(1),
        "took {elapsed:?}, more than the deadline {deadline:?} plus 1 s\n{}",
        r.stdout
    );
}

const ONE: Duration = Duration::from_secs(1);

/// Accepts up to `conns` TCP connections on 127.0.0.1 and hands each to
/// `serve` on its own thread.
fn tcp_fake<F>(conns: usize, serve: F) -> SocketAddr
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for s in l.incoming().take(conns) {
            let Ok(s) = s else { continue };
            let serve = serve.clone();
            thread::spawn(move || serve(s));
        }
    });
    addr
}

/// Reads one HTTP request: method, path (with query) and body.
fn read_request(s: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? != 1 || head.len() > 64 << 10 {
            return None;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut words = head.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

/// Answers every request on the connection with `response` (keep-alive).
fn http_fake(response: &'static str) -> SocketAddr {
    tcp_fake(16, move |mut s| {
        while read_request(&mut s).is_some() {
            if s.write_all(response.as_bytes()).is_err() {
                break;
            }
        }
    })
}

// ---- slowloris ---------------------------------------------------------

/// Sends `data` one byte a second (and reads nothing).
fn slowloris(data: &'static [u8]) -> SocketAddr {
    tcp_fake(4, move |mut s| {
        for b in data {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(ONE);
        }
    })
}

/// An SMTP greeting trickled at one byte a second never completes within
/// the 1 s I/O deadline: `net:no-reply` at that deadline, not after the
/// 20 s the whole banner would take.
#[test]
fn slowloris_smtp_greeting_is_no_reply_at_the_io_deadline() {
    let sb = Sandbox::new("faults::slowloris_smtp");
    let addr = slowloris(b"220 slow.example ESMTP trickling one byte a second\r\n");
    let yaml = format!(
        "allowed_networks: [127.0.0.0/8]\nsmtp:\n  - {{host: 127.0.0.1, port: {}, starttls: false}}\n",
        addr.port()
    );
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(1);
    let f = r.has("net:no-reply", "fail", &addr.to_string());
    assert_eq!(f.evidence["deadline_ms"], 1000, "{f:?}");
    // connect (instant) + one I/O deadline for the greeting.
    within(elapsed, ONE, &r);
}

/// An HTTP server that trickles its response head, a byte every 300 ms:
/// no single read is late, yet the response head must be complete within
/// the I/O deadline, so the registry probe reports `net:no-reply` at 1 s
/// (the whole-request deadline, connect + handshake + 2 × io, is only the
/// outer bound) and sends nothing more.
#[test]
fn slowloris_registry_is_no_reply_at_the_request_deadline() {
    let sb = Sandbox::new("faults::slowloris_registry");
    let addr = tcp_fake(4, |mut s| {
        if read_request(&mut s).is_none() {
            return;
        }
        // Faster than the 1 s I/O deadline, so no single read times out.
        for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}" {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(300));
        }
    });
    let url = format!("http://{addr}");
    let yaml =
        format!("allowed_networks: [127.0.0.0/8]\nregistry: {{url: '{url}', project: sekoia}}\n");
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(1);
    r.has("net:no-reply", "fail", &url);
    within(elapsed, ONE, &r);
}

// ---- SMTP: STARTTLS advertised, handshake fails ------------------------

/// Greets, advertises STARTTLS, answers 220 to it, then `after`.
fn smtp_broken_starttls(after: &'static [u8]) -> SocketAddr {
    tcp_fake(4, move |mut s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.write_all(b"220 fake.example ESMTP\r\n");
        let mut r = std::io::BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            if std::io::BufRead::read_line(&mut r, &mut line).unwrap_or(0) == 0 {
                return;
            }
            let cmd = line.trim_end().to_ascii_uppercase();
            if cmd.starts_with("EHLO") {
                let _ = s.write_all(b"250-fake.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
            } else if cmd == "STARTTLS" {
                let _ = s.write_all(b"220 2.0.0 Ready to start TLS\r\n");
                // Wait for the ClientHello before misbehaving, so the bytes
                // are not taken for an injection after the 220.
                let mut hello = [0u8; 5];
                let _ = r.read_exact(&mut hello);
                let _ = s.write_all(after);
                if after.is_empty() {
                    // Silent: hold the connection open past the deadline.
                    thread::sleep(Duration::from_secs(5));
                }
                return;
            } else if cmd == "QUIT" {
                let _ = s.write_all(b"221 bye\r\n");
                return;
            } else {
                let _ = s.write_all(b"502 no\r\n");
            }
        }
    })
}

/// STARTTLS answered, then the server sends a plain-text line instead of a
/// ServerHello: `tls:handshake-failed` at once.
#[test]
fn starttls_then_garbage_is_handshake_failed() {
    let sb = Sandbox::new("faults::starttls_garbage");
    let addr = smtp_broken_starttls(b"454 TLS not available due to temporary reason\r\n");
    let yaml = format!(
        "allowed_networks: [127.0.0.0/8]\nsmtp:\n  - {{host: 127.0.0.1, port: {}}}\n",
        addr.port()
    );
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(1);
    r.has("tls:handshake-failed", "fail", &addr.to_string());
    r.lacks("smtp:auth-ok");
    within(elapsed, ONE, &r);
}

/// STARTTLS answered, then silence: the handshake deadline ends it
/// (`net:no-reply`, step `tls-handshake`).
#[test]
fn starttls_then_silence_is_no_reply_at_the_handshake_deadline() {
    let sb = Sandbox::new("faults::starttls_silent");
    let addr = smtp_broken_starttls(b"");
    let yaml = format!(
        "allowed_networks: [127.0.0.0/8]\nsmtp:\n  - {{host: 127.0.0.1, port: {}}}\n",
        addr.port()
    );
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(1);
    let f = r.has("net:no-reply", "fail", &addr.to_string());
    assert_eq!(f.evidence["step"], "tls-handshake", "{f:?}");
    // greeting + EHLO + STARTTLS are instant; the handshake has 1 s.
    within(elapsed, ONE, &r);
}

// ---- registry: 500 and 429 with Retry-After ----------------------------

#[test]
fn registry_500_is_unavailable_at_once() {
    let sb = Sandbox::new("faults::registry_500");
    let addr = http_fake(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\noops\n",
    );
    let url = format!("http://{addr}");
    let yaml =
        format!("allowed_networks: [127.0.0.0/8]\nregistry: {{url: '{url}', project: sekoia}}\n");
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(1);
    let f = r.has("registry:unavailable", "fail", &url);
    assert_eq!(f.evidence["http_status"], 500, "{f:?}");
    assert!(f.message.contains("500"), "{}", f.message);
    within(elapsed, ONE, &r);
}

/// A 429 asking to come back in an hour is reported with its Retry-After,
/// never slept on.
#[test]
fn registry_429_reports_retry_after_without_waiting() {
    let sb = Sandbox::new("faults::registry_429");
    let addr = http_fake(
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3600\r\nContent-Length: 0\r\n\r\n",
    );
    let url = format!("http://{addr}");
    let yaml =
        format!("allowed_networks: [127.0.0.0/8]\nregistry: {{url: '{url}', project: sekoia}}\n");
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(1);
    let f = r.has("registry:unavailable", "fail", &url);
    assert_eq!(f.evidence["http_status"], 429, "{f:?}");
    assert_eq!(f.evidence["retry_after"], "3600", "{f:?}");
    assert!(f.message.contains("Retry-After 3600"), "{}", f.message);
    within(elapsed, ONE, &r);
}

/// A registry whose ping is healthy but which is overloaded for everything
/// after it: the push check and the image check are `registry:unavailable`
/// (with the step that failed), not a refused push or a missing image, and
/// nothing waits for the Retry-After.
#[test]
fn registry_overloaded_after_the_ping_is_unavailable_at_each_step() {
    let sb = Sandbox::new("faults::registry_overloaded_later");
    let addr = tcp_fake(16, |mut s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        loop {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(1) => head.push(b[0]),
                    _ => return,
                }
            }
            let head = String::from_utf8_lossy(&head);
            let line = head.lines().next().unwrap_or_default().to_string();
            let resp = if line.starts_with("GET /v2/ ") {
                "HTTP/1.1 200 OK\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: 2\r\n\r\n{}"
            } else if line.starts_with("POST ") {
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n"
            } else {
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3600\r\nContent-Length: 0\r\n\r\n"
            };
            if s.write_all(resp.as_bytes()).is_err() {
                return;
            }
        }
    });
    let url = format!("http://{addr}");
    let yaml = format!(
        "allowed_networks: [127.0.0.0/8]\nregistry: {{url: '{url}', project: sekoia, images: ['sekoia/collector:1.0.0']}}\n"
    );
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(1);
    let all = r.findings();
    let push: Vec<_> = all
        .iter()
        .filter(|f| f.code == "registry:unavailable" && f.target == url)
        .collect();
    assert_eq!(push.len(), 1, "{}", r.stdout);
    assert_eq!(push[0].evidence["http_status"], 503, "{:?}", push[0]);
    assert_eq!(push[0].evidence["retry_after"], "120", "{:?}", push[0]);
    assert!(
        push[0]
            .message
            .contains("POST /v2/sekoia/airgap-verify-check/blobs/uploads/"),
        "{}",
        push[0].message
    );
    let img = r.has(
        "registry:unavailable",
        "fail",
        &format!("{url} sekoia/collector:1.0.0"),
    );
    assert_eq!(img.evidence["http_status"], 429, "{img:?}");
    assert!(
        img.message
            .contains("HEAD /v2/sekoia/collector/manifests/1.0.0"),
        "{}",
        img.message
    );
    for f in &all {
        assert!(
            f.code != "registry:push-refused" && f.code != "registry:image-missing",
            "an overloaded registry reported as {}: {}",
            f.code,
            f.message
        );
    }
    within(elapsed, ONE, &r);
}

// ---- S3: 503 SlowDown --------------------------------------------------

/// `services --timeout 1s` against a fake S3 at `addr` (plain HTTP, fake
/// credentials); `extra` is YAML inside the `s3` map. Returns the run, its
/// time and the endpoint URL.
fn s3_services(sb: &Sandbox, addr: SocketAddr, extra: &str) -> (Run, Duration, String) {
    let url = format!("http://{addr}");
    let yaml = format!(
        "allowed_networks: [127.0.0.0/8]\ns3: {{endpoint: '{url}', {extra}access_key: AKFAKEFAKEFAKEFAKE01, secret_key_env: FAULTS_S3_SECRET}}\n"
    );
    let (r, elapsed) = services(
        sb,
        &yaml,
        "1s",
        &[("FAULTS_S3_SECRET", "not-a-real-secret")],
    );
    (r, elapsed, url)
}

#[test]
fn s3_503_slowdown_is_unavailable_without_retries() {
    let sb = Sandbox::new("faults::s3_slowdown");
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let addr = tcp_fake(16, move |mut s| {
        const BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fake</RequestId></Error>";
        while read_request(&mut s).is_some() {
            h.fetch_add(1, Ordering::SeqCst);
            let resp = format!(
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nRetry-After: 5\r\nContent-Length: {}\r\n\r\n{BODY}",
                BODY.len()
            );
            if s.write_all(resp.as_bytes()).is_err() {
                break;
            }
        }
    });
    let (r, elapsed, url) = s3_services(&sb, addr, "buckets: [sekoia], ");
    r.code(1);
    let f = r.has("s3:unavailable", "fail", &format!("{url} sekoia"));
    assert_eq!(f.evidence["http_status"], 503, "{f:?}");
    assert_eq!(f.evidence["s3_code"], "SlowDown", "{f:?}");
    assert!(f.message.contains("SlowDown"), "{}", f.message);
    r.lacks("s3:addressing-mismatch");
    // One listing, no retry and no second addressing style.
    assert_eq!(hits.load(Ordering::SeqCst), 1, "requests sent");
    within(elapsed, ONE, &r);
}

// ---- S3: a write that lands after its deadline ----------------------------

/// Buckets and their objects, as the fake S3 below holds them.
type Store = Arc<std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>>>;

/// A path-style S3 over plain HTTP, just enough for the write probe in a
/// temporary bucket, whose PutObject answers after `put_delay` and only
/// then stores the object, recreating its bucket if it was removed
/// meanwhile (as SeaweedFS does when a write waits on volume growth).
fn late_put_s3(store: Store, put_delay: Duration) -> SocketAddr {
    tcp_fake(64, move |mut s| {
        while let Some((method, path, _body)) = read_request(&mut s) {
            let (path, query) = path.split_once('?').unwrap_or((path.as_str(), ""));
            let mut parts = path.trim_start_matches('/').splitn(2, '/');
            let bucket = parts.next().unwrap_or("").to_string();
            let key = parts.next().unwrap_or("").to_string();
            let (status, body) = match (method.as_str(), bucket.is_empty(), key.is_empty()) {
                ("GET", true, _) => (
                    "200 OK",
                    "<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>"
                        .to_string(),
                ),
                ("PUT", false, true) => {
                    store.lock().unwrap().entry(bucket).or_default();
                    ("200 OK", String::new())
                }
                ("PUT", false, false) => {
                    thread::sleep(put_delay);
                    store.lock().unwrap().entry(bucket).or_default().push(key);
                    ("200 OK", String::new())
                }
                ("HEAD", false, false) => {
                    let st = store.lock().unwrap();
                    match st.get(&bucket).is_some_and(|o| o.contains(&key)) {
                        true => ("200 OK", String::new()),
                        false => ("404 Not Found", String::new()),
                    }
                }
                ("DELETE", false, false) => {
                    if let Some(o) = store.lock().unwrap().get_mut(&bucket) {
                        o.retain(|k| *k != key);
                    }
                    ("204 No Content", String::new())
                }
                ("DELETE", false, true) => {
                    let mut st = store.lock().unwrap();
                    match st.get(&bucket).map(|o| o.is_empty()) {
                        Some(true) => {
                            st.remove(&bucket);
                            ("204 No Content", String::new())
                        }
                        Some(false) => (
                            "409 Conflict",
                            "<Error><Code>BucketNotEmpty</Code></Error>".to_string(),
                        ),
                        None => (
                            "404 Not Found",
                            "<Error><Code>NoSuchBucket</Code></Error>".to_string(),
                        ),
                    }
                }
                ("GET", false, true) if query.contains("list-type=2") => {
                    let st = store.lock().unwrap();
                    let prefix = query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("prefix="))
                        .unwrap_or("")
                        .replace("%2F", "/");
                    match st.get(&bucket) {
                        None => (
                            "404 Not Found",
                            "<Error><Code>NoSuchBucket</Code></Error>".to_string(),
                        ),
                        Some(o) => {
                            let keys: Vec<&String> =
                                o.iter().filter(|k| k.starts_with(&prefix)).collect();
                            let contents: String = keys
                                .iter()
                                .map(|k| {
                                    format!("<Contents><Key>{k}</Key><Size>1</Size></Contents>")
                                })
                                .collect();
                            ("200 OK", format!(
                                "<ListBucketResult><Name>{bucket}</Name><KeyCount>{}</KeyCount><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>",
                                keys.len()
                            ))
                        }
                    }
                }
                _ => (
                    "400 Bad Request",
                    "<Error><Code>NotImplemented</Code></Error>".to_string(),
                ),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{}",
                if method == "HEAD" { 0 } else { body.len() },
                if method == "HEAD" { "" } else { &body }
            );
            if s.write_all(resp.as_bytes()).is_err() {
                break;
            }
        }
    })
}

/// The probe's put times out, the temporary bucket is removed, then the
/// put lands and brings the bucket back: the probe watches the key after a
/// timed-out put, deletes the late object, and leaves nothing behind.
#[test]
fn s3_put_landing_after_its_deadline_is_cleaned_up() {
    let sb = Sandbox::new("faults::s3_late_put");
    let store: Store = Default::default();
    let addr = late_put_s3(store.clone(), Duration::from_millis(1500));
    let (r, elapsed, _) = s3_services(&sb, addr, "");
    r.code(1);
    let f = r.has("net:no-reply", "fail", "airgap-verify-probe-");
    assert!(f.message.contains("write probe refused"), "{}", f.message);
    r.lacks("s3:leftover");
    // The late put has landed by now (1.5 s after it was sent).
    thread::sleep(Duration::from_millis(700));
    let left: Vec<_> = store.lock().unwrap().keys().cloned().collect();
    assert!(left.is_empty(), "buckets left on the storage: {left:?}");
    // Put deadline, then at most two more while the key is watched.
    within(elapsed, 3 * ONE, &r);
}

// ---- DNS: truncated UDP answers ----------------------------------------

/// A reply to `query`: truncated and empty, or with `addr` as the answer to
/// an A question.
fn dns_reply(query: &[u8], truncated: bool, addr: Ipv4Addr) -> Vec<u8> {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
    let q = Message::from_vec(query).expect("a DNS query");
    let mut m = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.authoritative = true;
    m.metadata.truncation = truncated;
    m.add_queries(q.queries.clone());
    if !truncated {
        if let Some(question) = q.queries.first() {
            if question.query_type() == RecordType::A {
                m.add_answer(Record::from_rdata(
                    question.name().clone(),
                    60,
                    RData::A(A(addr)),
                ));
            }
        }
    }
    m.to_vec().unwrap()
}

/// A DNS server whose every UDP answer is truncated; over TCP (when
/// `tcp`) it answers in full. Returns its address and the count of TCP
/// queries.
fn truncating_dns(tcp: bool, addr: Ipv4Addr) -> (SocketAddr, Arc<AtomicUsize>) {
    // A free UDP port is not always free for TCP (another test may hold
    // it), so a port is taken only when TCP on it is free too: held when the
    // server answers over TCP, released at once when nothing must listen.
    let (udp, tcp_listener) = (0..64)
        .find_map(|_| {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            match TcpListener::bind(udp.local_addr().unwrap()) {
                Ok(l) => Some((udp, tcp.then_some(l))),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
                Err(e) => panic!("TCP on the same port: {e}"),
            }
        })
        .expect("a port free for both UDP and TCP in 64 tries");
    let local = udp.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 1500];
        for _ in 0..64 {
            let Ok((n, from)) = udp.recv_from(&mut buf) else {
                return;
            };
            let _ = udp.send_to(&dns_reply(&buf[..n], true, addr), from);
        }
    });
    let count = Arc::new(AtomicUsize::new(0));
    if let Some(l) = tcp_listener {
        let c = count.clone();
        thread::spawn(move || {
            for s in l.incoming().take(64) {
                let Ok(mut s) = s else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut q).is_err() {
                    continue;
                }
                c.fetch_add(1, Ordering::SeqCst);
                let r = dns_reply(&q, false, addr);
                let mut out = (r.len() as u16).to_be_bytes().to_vec();
                out.extend(r);
                let _ = s.write_all(&out);
            }
        });
    }
    (local, count)
}

/// Every UDP answer is truncated: the probe must ask again over TCP and
/// judge the TCP answer (a pass, marked `retried_over_tcp`).
#[test]
fn truncated_udp_answer_is_retried_over_tcp() {
    let sb = Sandbox::new("faults::dns_truncated");
    let (server, tcp_queries) = truncating_dns(true, Ipv4Addr::new(127, 0, 0, 99));
    let yaml = format!(
        "allowed_networks: [127.0.0.0/8]\ndns:\n  servers: ['{server}']\n  transports: [udp]\n  public_names: []\n  expect:\n    - {{name: app.faults.test, addresses: [127.0.0.99]}}\n"
    );
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(0);
    let f = r.has(
        "dns:answer",
        "pass",
        &format!("{server}/udp app.faults.test"),
    );
    assert_eq!(f.evidence["retried_over_tcp"], true, "{f:?}");
    assert!(
        tcp_queries.load(Ordering::SeqCst) >= 1,
        "no TCP retry reached the server"
    );
    within(elapsed, ONE, &r);
}

/// Truncated over UDP and nothing listening on TCP: `dns:bad-reply` that
/// says the TCP retry failed, within the deadline.
#[test]
fn truncated_udp_answer_without_tcp_is_a_bad_reply() {
    let sb = Sandbox::new("faults::dns_truncated_no_tcp");
    let (server, _) = truncating_dns(false, Ipv4Addr::new(127, 0, 0, 99));
    let yaml = format!(
        "allowed_networks: [127.0.0.0/8]\ndns:\n  servers: ['{server}']\n  transports: [udp]\n  public_names: []\n  expect:\n    - {{name: app.faults.test, addresses: [127.0.0.99]}}\n"
    );
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(1);
    let f = r.has(
        "dns:bad-reply",
        "fail",
        &format!("{server}/udp app.faults.test"),
    );
    assert!(
        f.message
            .contains("truncated over UDP, and the TCP retry failed"),
        "{}",
        f.message
    );
    within(elapsed, ONE, &r);
}

/// A DNS server that never answers the first datagram of a query, only the
/// same query sent again (a lost datagram, or a swallowed ICMP): the probe
/// resends and passes, well within the deadline.
#[test]
fn a_lost_udp_query_is_sent_again() {
    let sb = Sandbox::new("faults::dns_lost_datagram");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = udp.local_addr().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    thread::spawn(move || {
        let mut seen = std::collections::HashSet::new();
        let mut buf = [0u8; 1500];
        for _ in 0..64 {
            let Ok((n, from)) = udp.recv_from(&mut buf) else {
                return;
            };
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            if seen.insert(id) {
                d.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let reply = dns_reply(&buf[..n], false, Ipv4Addr::new(127, 0, 0, 99));
            let _ = udp.send_to(&reply, from);
        }
    });
    let yaml = format!(
        "allowed_networks: [127.0.0.0/8]\ndns:\n  servers: ['{server}']\n  transports: [udp]\n  public_names: []\n  expect:\n    - {{name: app.faults.test, addresses: [127.0.0.99]}}\n"
    );
    let (r, elapsed) = services(&sb, &yaml, "2s", &[]);
    r.code(0).has(
        "dns:answer",
        "pass",
        &format!("{server}/udp app.faults.test"),
    );
    assert!(dropped.load(Ordering::SeqCst) >= 1, "no query was dropped");
    // The first resend goes out after 250 ms, not at the deadline.
    within(elapsed, ONE, &r);
}

// ---- NTP: kiss-o'-death RATE -------------------------------------------

#[test]
fn ntp_kiss_of_death_rate_is_reported() {
    let sb = Sandbox::new("faults::ntp_kod");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..8 {
            let Ok((n, from)) = udp.recv_from(&mut buf) else {
                return;
            };
            if n < 48 {
                continue;
            }
            // RFC 5905 7.4: LI 3, VN 4, mode 4, stratum 0, refid "RATE",
            // origin = the client's transmit timestamp.
            let mut p = [0u8; 48];
            p[0] = 0xe4;
            p[12..16].copy_from_slice(b"RATE");
            p[24..32].copy_from_slice(&buf[40..48]);
            let _ = udp.send_to(&p, from);
        }
    });
    let yaml = format!(
        "allowed_networks: [127.0.0.0/8]\nntp: {{servers: ['127.0.0.1:{}']}}\n",
        addr.port()
    );
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(1);
    let f = r.has(
        "ntp:kiss-of-death",
        "fail",
        &format!("127.0.0.1:{}", addr.port()),
    );
    assert_eq!(f.evidence["kiss_code"], "RATE", "{f:?}");
    assert!(f.message.contains("RATE"), "{}", f.message);
    r.lacks("ntp:synchronised");
    within(elapsed, ONE, &r);
}

// ---- TLS: incomplete chain ---------------------------------------------

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A root CA, an intermediate it signs, and a leaf for 127.0.0.1 that the
/// intermediate signs, as PEM files in `dir`.
fn three_level_pki(dir: &std::path::Path) {
    let key = |name: &str| {
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                name,
            ],
        )
    };
    key("root.key");
    key("inter.key");
    key("leaf.key");
    std::fs::write(
        dir.join("ext.cnf"),
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         [leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-subj",
            "/CN=Faults Root CA",
            "-days",
            "30",
            "-extensions",
            "ca",
            "-config",
            "ext.cnf",
            "-out",
            "root.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "inter.key",
            "-subj",
            "/CN=Faults Intermediate CA",
            "-out",
            "inter.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "inter.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "ca",
            "-out",
            "inter.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-subj",
            "/CN=127.0.0.1",
            "-out",
            "leaf.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "leaf",
            "-out",
            "leaf.pem",
        ],
    );
}

/// An implicit-TLS server that presents `chain` (PEM files) and then
/// speaks SMTP.
fn tls_smtp_fake(dir: &std::path::Path, chain: &[&str], key: &str) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|f| CertificateDer::from_pem_file(dir.join(f)).unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join(key)).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let cfg = Arc::new(cfg);
    tcp_fake(4, move |s| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, s);
        let _ = tls.write_all(b"220 tls.example ESMTP\r\n");
        let mut buf = [0u8; 512];
        let _ = tls.read(&mut buf);
    })
}

/// The server sends its leaf without the intermediate that signed it; the
/// CA bundle holds only the root. Reported as `tls:unknown-issuer` naming
/// the missing intermediate, with the presented chain as evidence.
#[test]
fn incomplete_chain_is_unknown_issuer_naming_the_missing_intermediate() {
    let sb = Sandbox::new("faults::tls_incomplete_chain");
    three_level_pki(&sb.dir);
    let addr = tls_smtp_fake(&sb.dir, &["leaf.pem"], "leaf.key");
    let yaml = format!(
        "ca_bundle: {}\nallowed_networks: [127.0.0.0/8]\nsmtp:\n  - {{host: 127.0.0.1, port: {}, tls: true}}\n",
        sb.path("root.pem").display(),
        addr.port()
    );
    let (r, elapsed) = services(&sb, &yaml, "1s", &[]);
    r.code(1);
    let f = r.has("tls:unknown-issuer", "fail", &addr.to_string());
    assert!(
        f.message.contains("Faults Intermediate CA"),
        "the message names the missing intermediate: {}",
        f.message
    );
    assert_eq!(
        f.evidence["chain"].as_array().map(Vec::len),
        Some(1),
        "{f:?}"
    );
    within(elapsed, ONE, &r);

    // Control: the same server with the full chain verifies, so the
    // finding above is about the missing intermediate and nothing else.
    let addr = tls_smtp_fake(&sb.dir, &["leaf.pem", "inter.pem"], "leaf.key");
    let yaml = format!(
        "ca_bundle: {}\nallowed_networks: [127.0.0.0/8]\nsmtp:\n  - {{host: 127.0.0.1, port: {}, tls: true}}\n",
        sb.path("root.pem").display(),
        addr.port()
    );
    let (r, _) = services(&sb, &yaml, "1s", &[]);
    r.has("tls:verified", "pass", &addr.to_string());
}
