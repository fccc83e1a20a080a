//! SMTP probe: a hand-written ESMTP client (RFC 5321, STARTTLS RFC 3207,
//! AUTH RFC 4954 with PLAIN RFC 4616 and LOGIN) over tokio and rustls.
//!
//! Hand-written because what must be reported (every banner line, the
//! extensions before and after TLS, whether AUTH is offered in clear text,
//! the exact refusal) is what client libraries hide or retry around.
//!
//! Guarantees:
//! - every read and every write has the I/O deadline (a whole reply must
//!   arrive within it); connect and the TLS handshake have their own. A
//!   tarpit costs one I/O deadline and is `net:no-reply`;
//! - replies are parsed strictly and bounded ([`MAX_LINE`] bytes a line,
//!   [`MAX_LINES`] lines a reply, CRLF endings, one code per reply, no
//!   control characters); anything else is `smtp:protocol-error` and ends
//!   the conversation;
//! - the password is sent only inside TLS whose certificate verified, and
//!   never appears in a finding: the commands sent are never put into
//!   evidence, and every finding is scrubbed of the password and of its
//!   base64 forms (a server could echo them back);
//! - after a TLS failure nothing more is sent; bytes that follow the 220
//!   reply to STARTTLS (an injection attempt) end the conversation before
//!   the handshake;
//! - no message is sent unless `--send-test-mail`: an accepted MAIL FROM /
//!   RCPT TO is followed by RSET; a conversation still in step ends with
//!   QUIT (best effort, short deadline).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::context::ProbeContext;
use super::net::NetError;
use crate::config::{SmtpPlan, DEFAULT_HELO};
use crate::finding::{Code, Finding};

mod message;
mod reply;

use message::test_message;
pub use message::TEST_SUBJECT;
pub use reply::{
    auth_mechanisms, extensions, has_extension, parse_reply_line, queue_id, Reply, ReplyAssembler,
    ReplyLine, MAX_LINE, MAX_LINES,
};
use reply::{path_arg, read_reply, wire_safe, ReadError};

/// Longest wait for the goodbye (QUIT, its reply, the TLS close).
const QUIT_DEADLINE: Duration = Duration::from_secs(1);

// ---- the connection ----------------------------------------------------------

/// A plain or TLS stream: the same conversation runs over both.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type BoxStream = Box<dyn Stream>;

/// Why a step of the conversation failed.
#[derive(Debug)]
enum Failure {
    Net(NetError),
    Closed { partial: bool },
    Malformed(String),
}

struct Session {
    io: BufReader<BoxStream>,
    deadline: Duration,
}

impl Session {
    fn new(stream: BoxStream, deadline: Duration) -> Session {
        Session {
            io: BufReader::new(stream),
            deadline,
        }
    }

    async fn read(&mut self) -> Result<Reply, Failure> {
        match tokio::time::timeout(self.deadline, read_reply(&mut self.io)).await {
            Err(_) => Err(Failure::Net(NetError::NoReply(self.deadline))),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(ReadError::Io(e))) => Err(Failure::Net(NetError::from_io(&e))),
            Ok(Err(ReadError::Closed { partial })) => Err(Failure::Closed { partial }),
            Ok(Err(ReadError::Malformed(m))) => Err(Failure::Malformed(m)),
        }
    }

    /// Writes `data` and flushes it. Errors never quote what was written.
    async fn send(&mut self, data: &[u8]) -> Result<(), Failure> {
        let io = &mut self.io;
        let write = async {
            io.write_all(data).await?;
            io.flush().await
        };
        match tokio::time::timeout(self.deadline, write).await {
            Err(_) => Err(Failure::Net(NetError::NoReply(self.deadline))),
            Ok(Err(e)) => Err(Failure::Net(NetError::from_io(&e))),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn command(&mut self, line: &str) -> Result<Reply, Failure> {
        let mut data = Vec::with_capacity(line.len() + 2);
        data.extend_from_slice(line.as_bytes());
        data.extend_from_slice(b"\r\n");
        self.send(&data).await?;
        self.read().await
    }

    /// Bytes received but not yet read as a reply.
    fn pending(&self) -> bool {
        !self.io.buffer().is_empty()
    }

    fn into_inner(self) -> BoxStream {
        self.io.into_inner()
    }

    /// QUIT, its reply and the close, within a short deadline; errors are
    /// ignored (the findings are already made).
    async fn quit(mut self) {
        let d = self.deadline.min(QUIT_DEADLINE);
        let _ = tokio::time::timeout(d, async {
            if self.command("QUIT").await.is_ok() {
                let _ = self.io.shutdown().await;
            }
        })
        .await;
    }
}

// ---- the probe ---------------------------------------------------------------

/// How an AUTH exchange ended.
enum Auth {
    Accepted,
    /// Refused or unavailable: a finding says so; the session is in step.
    Refused,
    /// The session broke (a finding says why): stop without QUIT.
    Broken,
}

struct Prober<'a> {
    ctx: &'a ProbeContext,
    relay: &'a SmtpPlan,
    target: String,
    address: String,
    helo: String,
    tls_mode: &'static str,
    banner: Vec<String>,
    ext_clear: Option<Vec<String>>,
    ext_tls: Option<Vec<String>>,
    ready: bool,
    notes: Vec<String>,
    out: Vec<Finding>,
}

impl<'a> Prober<'a> {
    fn new(ctx: &'a ProbeContext, relay: &'a SmtpPlan, address: String) -> Prober<'a> {
        let mut notes = Vec::new();
        let helo = if !relay.helo.is_empty() && wire_safe(&relay.helo) {
            relay.helo.clone()
        } else {
            notes.push(format!(
                "the configured helo name is not usable in a command; {DEFAULT_HELO} was sent"
            ));
            DEFAULT_HELO.to_string()
        };
        Prober {
            ctx,
            relay,
            target: relay.target.to_string(),
            address,
            helo,
            tls_mode: "none",
            banner: Vec::new(),
            ext_clear: None,
            ext_tls: None,
            ready: false,
            notes,
            out: Vec::new(),
        }
    }

    fn finding(&self, code: Code, message: impl Into<String>) -> Finding {
        Finding::new(code, self.target.clone(), message).evidence("address", self.address.clone())
    }

    fn has(&self, code: Code) -> bool {
        self.out.iter().any(|f| f.code == code)
    }

    /// The finding for a step that failed.
    fn fail(&mut self, failure: Failure, step: &str) {
        let f = match failure {
            Failure::Net(e) => e
                .finding(self.target.clone(), &format!("SMTP relay ({step})"))
                .evidence("address", self.address.clone()),
            Failure::Closed { partial } => self.finding(
                Code::SmtpProtocolError,
                if partial {
                    format!("the server closed the connection in the middle of its reply ({step})")
                } else {
                    format!("the server closed the connection instead of replying ({step})")
                },
            ),
            Failure::Malformed(m) => self.finding(
                Code::SmtpProtocolError,
                format!("the server's answer is not a valid SMTP reply ({step}): {m}"),
            ),
        };
        self.out.push(f.evidence("step", step));
    }

    /// Sends `cmd` (or only reads, for the greeting) and returns the reply;
    /// a failure becomes a finding. `cmd` is never recorded.
    async fn step(&mut self, s: &mut Session, cmd: Option<&str>, step: &str) -> Option<Reply> {
        let r = match cmd {
            Some(c) => s.command(c).await,
            None => s.read().await,
        };
        match r {
            Ok(r) => Some(r),
            Err(f) => {
                self.fail(f, step);
                None
            }
        }
    }

    /// A TLS handshake with the relay's name; its findings, pass or fail.
    async fn handshake(&mut self, stream: BoxStream) -> Option<BoxStream> {
        let tls = &self.ctx.tls;
        let host = &self.relay.target.host;
        let d = self.ctx.plan.deadlines.handshake;
        let (stream, findings) = match tls.handshake(stream, host, &self.target, d).await {
            Ok((s, f)) => (Some(Box::new(s) as BoxStream), f),
            Err(f) => (None, f),
        };
        for f in findings {
            let f = f
                .evidence("address", self.address.clone())
                .evidence("tls_mode", self.tls_mode);
            self.out.push(f);
        }
        stream
    }

    async fn run(&mut self, stream: BoxStream) {
        let relay = self.relay;
        let io = self.ctx.plan.deadlines.io;
        let stream = if relay.tls {
            self.tls_mode = "implicit";
            match self.handshake(stream).await {
                Some(s) => s,
                None => return,
            }
        } else {
            stream
        };
        let mut s = Session::new(stream, io);

        let Some(greeting) = self.step(&mut s, None, "greeting").await else {
            return;
        };
        self.banner = greeting.display_lines();
        if greeting.code != 220 {
            let f = self
                .finding(
                    Code::SmtpBadGreeting,
                    format!(
                        "the server greeted with {} instead of 220: {}",
                        greeting.code,
                        greeting.summary()
                    ),
                )
                .evidence("banner", self.banner.clone());
            self.out.push(f);
            s.quit().await;
            return;
        }

        let ehlo_cmd = format!("EHLO {}", self.helo);
        let mut exts = match self.ehlo(&mut s, &ehlo_cmd, "EHLO").await {
            Ok(e) => e,
            Err(in_step) => {
                if in_step {
                    s.quit().await;
                }
                return;
            }
        };
        self.ready = true;
        if relay.tls {
            self.ext_tls = Some(exts.clone());
        } else {
            self.ext_clear = Some(exts.clone());
            if let Some(mechs) = auth_mechanisms(&exts) {
                let f = self
                    .finding(
                        Code::SmtpAuthInClear,
                        format!(
                            "the server offers AUTH ({}) before TLS: a client may send its password in clear text",
                            if mechs.is_empty() { "no mechanism named".to_string() } else { mechs.join(" ") }
                        ),
                    )
                    .evidence("mechanisms", mechs)
                    .evidence("extensions_before_tls", exts.clone());
                self.out.push(f);
            }
            if has_extension(&exts, "STARTTLS") {
                let Some(r) = self.step(&mut s, Some("STARTTLS"), "STARTTLS").await else {
                    return;
                };
                if r.code == 220 {
                    if s.pending() {
                        // Whatever follows the 220 was sent before TLS and
                        // would be read as if it came through TLS.
                        let f = self.finding(
                            Code::SmtpProtocolError,
                            "the server sent data after its 220 reply to STARTTLS, before the TLS handshake (a command-injection attempt or a broken server); the conversation was stopped",
                        ).evidence("step", "STARTTLS");
                        self.out.push(f);
                        return;
                    }
                    self.tls_mode = "starttls";
                    let Some(stream) = self.handshake(s.into_inner()).await else {
                        return;
                    };
                    s = Session::new(stream, io);
                    exts = match self.ehlo(&mut s, &ehlo_cmd, "EHLO after STARTTLS").await {
                        Ok(e) => e,
                        Err(in_step) => {
                            if in_step {
                                s.quit().await;
                            }
                            return;
                        }
                    };
                    self.ext_tls = Some(exts.clone());
                } else if relay.starttls {
                    let f = self
                        .finding(
                            Code::SmtpNoStarttls,
                            format!(
                                "STARTTLS is required but the server refused it ({}): mail would cross the network in clear text",
                                r.summary()
                            ),
                        )
                        .evidence("step", "STARTTLS")
                        .evidence("reply", r.display_lines())
                        .evidence("extensions_before_tls", exts.clone());
                    self.out.push(f);
                } else {
                    self.notes
                        .push(format!("STARTTLS was offered but refused: {}", r.summary()));
                }
            } else if relay.starttls {
                let f = self
                    .finding(
                        Code::SmtpNoStarttls,
                        "STARTTLS is required but the server does not offer it: mail would cross the network in clear text",
                    )
                    .evidence("extensions_before_tls", exts.clone());
                self.out.push(f);
            }
        }

        let mut may_relay = true;
        if let (Some(user), Some(pw)) = (&relay.username, &relay.password) {
            may_relay = false;
            if self.ext_tls.is_none() {
                self.withhold_password();
            } else {
                match self.authenticate(&mut s, user, pw.expose(), &exts).await {
                    Auth::Accepted => may_relay = true,
                    Auth::Refused => {}
                    Auth::Broken => return,
                }
            }
            if !may_relay && relay.mail_from.is_some() && relay.rcpt_to.is_some() {
                self.notes.push(
                    "MAIL FROM / RCPT TO were not tried: the session is not authenticated".into(),
                );
            }
        }
        if may_relay {
            if let (Some(from), Some(to)) = (&relay.mail_from, &relay.rcpt_to) {
                if !self.relay_test(&mut s, from, to).await {
                    return;
                }
            }
        }
        s.quit().await;
    }

    /// EHLO and its extensions. A refusal is `smtp:bad-greeting`:
    /// `Err(true)`, the session is in step (QUIT); `Err(false)`, it broke.
    async fn ehlo(&mut self, s: &mut Session, cmd: &str, step: &str) -> Result<Vec<String>, bool> {
        let r = self.step(s, Some(cmd), step).await.ok_or(false)?;
        if r.code == 250 {
            return Ok(extensions(&r));
        }
        let f = self
            .finding(
                Code::SmtpBadGreeting,
                format!("the server refused EHLO {}: {}", self.helo, r.summary()),
            )
            .evidence("step", step)
            .evidence("reply", r.display_lines())
            .evidence("banner", self.banner.clone());
        self.out.push(f);
        Err(true)
    }

    /// Credentials are configured but there is no TLS: they are not sent.
    fn withhold_password(&mut self) {
        const NOTE: &str = "; the password was not sent (it is never sent without TLS)";
        let mut noted = false;
        for f in &mut self.out {
            if matches!(f.code, Code::SmtpNoStarttls | Code::SmtpAuthInClear) {
                f.message.push_str(NOTE);
                noted = true;
            }
        }
        if !noted {
            let f = self.finding(
                Code::SmtpAuthUnavailable,
                format!(
                    "credentials are configured but this connection has no TLS and the server offers no AUTH{NOTE}"
                ),
            );
            self.out.push(f);
        }
    }

    async fn authenticate(
        &mut self,
        s: &mut Session,
        user: &str,
        pw: &str,
        exts: &[String],
    ) -> Auth {
        let offered = auth_mechanisms(exts);
        let mechs = offered.clone().unwrap_or_default();
        let mech = if mechs.iter().any(|m| m == "PLAIN") {
            "PLAIN"
        } else if mechs.iter().any(|m| m == "LOGIN") {
            "LOGIN"
        } else {
            let f = self
                .finding(
                    Code::SmtpAuthUnavailable,
                    match &offered {
                        None => "credentials are configured but the server offers no AUTH after TLS".to_string(),
                        Some(m) => format!(
                            "credentials are configured but the server offers neither PLAIN nor LOGIN (it offers: {})",
                            if m.is_empty() { "nothing".to_string() } else { m.join(" ") }
                        ),
                    },
                )
                .evidence("mechanisms", mechs)
                .evidence("extensions_after_tls", exts.to_vec());
            self.out.push(f);
            return Auth::Refused;
        };
        let step = if mech == "PLAIN" {
            "AUTH PLAIN"
        } else {
            "AUTH LOGIN"
        };
        let reply = if mech == "PLAIN" {
            let blob = BASE64.encode(format!("\0{user}\0{pw}"));
            self.step(s, Some(&format!("AUTH PLAIN {blob}")), step)
                .await
        } else {
            match self.step(s, Some("AUTH LOGIN"), step).await {
                Some(r) if r.code == 334 => {
                    match self
                        .step(s, Some(&BASE64.encode(user)), "AUTH LOGIN (user name)")
                        .await
                    {
                        Some(r) if r.code == 334 => {
                            self.step(s, Some(&BASE64.encode(pw)), "AUTH LOGIN (password)")
                                .await
                        }
                        other => other,
                    }
                }
                other => other,
            }
        };
        let Some(reply) = reply else {
            return Auth::Broken;
        };
        let ev = |f: Finding| {
            f.evidence("user", user)
                .evidence("mechanism", mech)
                .evidence("mechanisms", mechs.clone())
                .evidence("tls_mode", self.tls_mode)
        };
        match reply.code {
            235 => {
                let f = ev(self.finding(
                    Code::SmtpAuthOk,
                    format!("the credentials of `{user}` were accepted (AUTH {mech} over TLS)"),
                ))
                .evidence("reply", reply.display_lines());
                self.out.push(f);
                Auth::Accepted
            }
            334 => {
                // More challenges than PLAIN or LOGIN has: cancel (RFC 4954).
                let f = ev(self.finding(
                    Code::SmtpAuthFailed,
                    format!("the server did not accept or refuse the credentials of `{user}`: it asked for more (AUTH {mech}); the exchange was cancelled"),
                ));
                self.out.push(f);
                match self.step(s, Some("*"), "AUTH cancel").await {
                    Some(_) => Auth::Refused,
                    None => Auth::Broken,
                }
            }
            _ => {
                let f = ev(self.finding(
                    Code::SmtpAuthFailed,
                    format!(
                        "the server rejected the credentials of `{user}` (AUTH {mech}): {}",
                        reply.summary()
                    ),
                ))
                .evidence("reply", reply.display_lines());
                self.out.push(f);
                Auth::Refused
            }
        }
    }

    /// MAIL FROM / RCPT TO (and the test message), then RSET. False when the
    /// session broke (a finding says why).
    async fn relay_test(&mut self, s: &mut Session, from: &str, to: &str) -> bool {
        let (Some(from), Some(to)) = (path_arg(from), path_arg(to)) else {
            self.notes.push(
                "MAIL FROM / RCPT TO were not tried: mail_from or rcpt_to is not a usable address"
                    .into(),
            );
            return true;
        };
        let authed = self.has(Code::SmtpAuthOk);
        let refused = |p: &Self, step: &str, what: String, r: &Reply| {
            p.finding(
                Code::SmtpRelayRefused,
                format!("the relay refused {what}: {}", r.summary()),
            )
            .evidence("step", step)
            .evidence("reply", r.display_lines())
            .evidence("reply_code", r.code)
            .evidence("mail_from", from.clone())
            .evidence("rcpt_to", to.clone())
            .evidence("authenticated", authed)
        };
        let Some(r) = self
            .step(s, Some(&format!("MAIL FROM:{from}")), "MAIL FROM")
            .await
        else {
            return false;
        };
        if !r.is_positive() {
            let f = refused(self, "MAIL FROM", format!("the sender {from}"), &r);
            self.out.push(f);
            return self.rset(s).await;
        }
        let Some(r) = self
            .step(s, Some(&format!("RCPT TO:{to}")), "RCPT TO")
            .await
        else {
            return false;
        };
        if !r.is_positive() {
            let f = refused(self, "RCPT TO", format!("the recipient {to}"), &r);
            self.out.push(f);
            return self.rset(s).await;
        }
        let send = self.ctx.plan.send_test_mail;
        let f = self
            .finding(
                Code::SmtpRelayAccepted,
                format!(
                    "the relay accepted MAIL FROM:{from} and RCPT TO:{to}{}; {}",
                    if authed { " (authenticated)" } else { "" },
                    if send {
                        "a test message follows (--send-test-mail)"
                    } else {
                        "the transaction was reset, no mail was sent"
                    }
                ),
            )
            .evidence("mail_from", from.clone())
            .evidence("rcpt_to", to.clone())
            .evidence("reply", r.display_lines())
            .evidence("authenticated", authed);
        self.out.push(f);
        if send {
            let Some(r) = self.step(s, Some("DATA"), "DATA").await else {
                return false;
            };
            if r.code != 354 {
                let f = refused(self, "DATA", "the test message (DATA)".into(), &r);
                self.out.push(f);
                return self.rset(s).await;
            }
            let msg = test_message(&from, &to, &self.helo, &self.target);
            if let Err(e) = s.send(msg.as_bytes()).await {
                self.fail(e, "message");
                return false;
            }
            let Some(r) = self.step(s, None, "end of message").await else {
                return false;
            };
            if r.is_positive() {
                let id = queue_id(&r);
                let f = self
                    .finding(
                        Code::SmtpTestMailSent,
                        format!(
                            "a test message from {from} to {to} was accepted for delivery (queue id {})",
                            id.as_deref().unwrap_or("not given")
                        ),
                    )
                    .evidence("queue_id", id)
                    .evidence("reply", r.display_lines())
                    .evidence("subject", TEST_SUBJECT)
                    .evidence("mail_from", from.clone())
                    .evidence("rcpt_to", to.clone());
                self.out.push(f);
            } else {
                let f = refused(self, "end of message", "the test message".into(), &r);
                self.out.push(f);
            }
        }
        self.rset(s).await
    }

    /// RSET: never leave a transaction open. False when the session broke.
    async fn rset(&mut self, s: &mut Session) -> bool {
        self.step(s, Some("RSET"), "RSET").await.is_some()
    }

    /// The findings, `smtp:ready` first, scrubbed of `secrets`.
    fn finish(mut self, secrets: &[String]) -> Vec<Finding> {
        if self.ready {
            let mode = match self.tls_mode {
                "implicit" => "implicit TLS",
                "starttls" => "STARTTLS",
                _ => "no TLS",
            };
            let exts = self
                .ext_tls
                .as_ref()
                .or(self.ext_clear.as_ref())
                .map_or(0, Vec::len);
            let mut f = self
                .finding(
                    Code::SmtpReady,
                    format!(
                        "the relay greeted with 220 and answered EHLO ({exts} extensions, {mode})"
                    ),
                )
                .evidence("banner", self.banner.clone())
                .evidence("extensions_before_tls", self.ext_clear.clone())
                .evidence("extensions_after_tls", self.ext_tls.clone())
                .evidence("tls_mode", self.tls_mode)
                .evidence("helo", self.helo.clone());
            if !self.notes.is_empty() {
                f = f.evidence("notes", self.notes.clone());
            }
            self.out.insert(0, f);
        }
        for f in &mut self.out {
            scrub(f, secrets);
        }
        self.out
    }
}

/// The forms the password may take on the wire (and so in an echo).
fn secret_forms(relay: &SmtpPlan) -> Vec<String> {
    let Some(pw) = relay.password.as_ref().map(|p| p.expose()) else {
        return Vec::new();
    };
    if pw.is_empty() {
        return Vec::new();
    }
    let user = relay.username.as_deref().unwrap_or("");
    vec![
        BASE64.encode(format!("\0{user}\0{pw}")),
        BASE64.encode(pw),
        pw.to_string(),
    ]
}

fn scrub_str(s: &mut String, secrets: &[String]) {
    for secret in secrets {
        if s.contains(secret.as_str()) {
            *s = s.replace(secret.as_str(), "<redacted>");
        }
    }
}

fn scrub_value(v: &mut Value, secrets: &[String]) {
    match v {
        Value::String(s) => scrub_str(s, secrets),
        Value::Array(a) => a.iter_mut().for_each(|v| scrub_value(v, secrets)),
        Value::Object(o) => o.values_mut().for_each(|v| scrub_value(v, secrets)),
        _ => {}
    }
}

/// Removes every secret form from a finding's message and evidence.
fn scrub(f: &mut Finding, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    scrub_str(&mut f.message, secrets);
    f.evidence
        .values_mut()
        .for_each(|v| scrub_value(v, secrets));
}

/// Runs the conversation over an open connection (`address`: its peer, for
/// evidence).
async fn converse<S>(
    ctx: &ProbeContext,
    relay: &SmtpPlan,
    stream: S,
    address: String,
) -> Vec<Finding>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut p = Prober::new(ctx, relay, address);
    p.run(Box::new(stream)).await;
    p.finish(&secret_forms(relay))
}

pub async fn probe(ctx: &ProbeContext, relay: &SmtpPlan) -> Vec<Finding> {
    let target = relay.target.to_string();
    match super::context::connect_tcp(&ctx.resolver, &relay.target, ctx.plan.deadlines.connect)
        .await
    {
        Ok((tcp, addr)) => converse(ctx, relay, tcp, addr.to_string()).await,
        Err(e) => vec![e.finding(target, "SMTP relay").evidence("step", "connect")],
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use tokio::io::DuplexStream;

    use tokio::io::AsyncBufReadExt;

    use super::message::dot_stuff;
    use super::*;
    use crate::config::{self, LoadOptions, Secret};
    use crate::probe::tls::TlsSettings;

    // ---- the parser ----------------------------------------------------------

    fn line(raw: &str) -> Result<ReplyLine, String> {
        parse_reply_line(raw.as_bytes())
    }

    async fn reply(raw: &[u8]) -> Result<Reply, ReadError> {
        let mut r = raw;
        read_reply(&mut r).await
    }

    #[test]
    fn reply_lines() {
        assert_eq!(
            line("250-PIPELINING\r\n").unwrap(),
            ReplyLine {
                code: 250,
                last: false,
                text: "PIPELINING".into()
            }
        );
        assert_eq!(
            line("554 5.7.1 Relay access denied\r\n").unwrap(),
            ReplyLine {
                code: 554,
                last: true,
                text: "5.7.1 Relay access denied".into()
            }
        );
        // A bare code ends a reply (RFC 5321 4.2: the text is optional).
        assert_eq!(
            line("250\r\n").unwrap(),
            ReplyLine {
                code: 250,
                last: true,
                text: String::new()
            }
        );
        assert!(line("250 ok\n").unwrap_err().contains("bare LF"));
        assert!(line("250 ok").unwrap_err().contains("not terminated"));
        assert!(line("2x0 ok\r\n")
            .unwrap_err()
            .contains("not an SMTP reply"));
        assert!(line("SSH-2.0-OpenSSH_9.6\r\n")
            .unwrap_err()
            .contains("not an SMTP reply"));
        assert!(line("650 ok\r\n").is_err());
        assert!(line("25\r\n").is_err());
        assert!(line("250_ok\r\n")
            .unwrap_err()
            .contains("space or a hyphen"));
        assert!(line("250 a\rb\r\n").unwrap_err().contains("control"));
        assert!(line("220 \x1b[31mred\r\n").unwrap_err().contains("control"));
        assert!(line("220 \u{9b}31m\r\n").unwrap_err().contains("control"));
        assert!(line("220 tab\there\r\n").is_ok());
        let long = format!("250 {}\r\n", "a".repeat(MAX_LINE - 4));
        assert_eq!(line(&long).unwrap().text.len(), MAX_LINE - 4);
        let longer = format!("250 {}\r\n", "a".repeat(MAX_LINE - 3));
        assert!(line(&longer).unwrap_err().contains("longer than"));
        // Quoted server bytes are escaped and bounded.
        let e = line(&format!("\x07{}\r\n", "z".repeat(500))).unwrap_err();
        assert!(e.contains("\\x07") && e.len() < 200, "{e}");
    }

    #[tokio::test]
    async fn multi_line_banner() {
        let r = reply(b"220-smtp.perimeter.test ESMTP\r\n220-no UCE\r\n220 ready\r\nEXTRA")
            .await
            .unwrap();
        assert_eq!(r.code, 220);
        assert_eq!(r.lines, ["smtp.perimeter.test ESMTP", "no UCE", "ready"]);
        assert_eq!(
            r.display_lines(),
            ["220-smtp.perimeter.test ESMTP", "220-no UCE", "220 ready"]
        );
        assert_eq!(r.summary(), "220 smtp.perimeter.test ESMTP no UCE ready");
    }

    #[tokio::test]
    async fn malformed_replies() {
        let m = |r: Result<Reply, ReadError>| match r {
            Err(ReadError::Malformed(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(m(reply(b"250-a\r\n251 b\r\n").await).contains("changes its code"));
        assert!(m(reply(b"220 hello\n").await).contains("bare LF"));
        assert!(m(reply(b"2a0 hello\r\n").await).contains("not an SMTP reply"));
        // An overlong line is refused after MAX_LINE + 2 bytes, not read on.
        let mut big = b"220 ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 10 * MAX_LINE));
        big.extend(b"\r\n");
        assert!(m(reply(&big).await).contains("longer than"));
        let many: Vec<u8> = std::iter::repeat_n(&b"250-x\r\n"[..], MAX_LINES + 5)
            .flatten()
            .copied()
            .collect();
        assert!(m(reply(&many).await).contains("100 lines"));
        let mut ok: Vec<u8> = std::iter::repeat_n(&b"250-x\r\n"[..], MAX_LINES - 1)
            .flatten()
            .copied()
            .collect();
        ok.extend(b"250 y\r\n");
        assert_eq!(reply(&ok).await.unwrap().lines.len(), MAX_LINES);
    }

    #[tokio::test]
    async fn closed_replies() {
        assert!(matches!(
            reply(b"").await,
            Err(ReadError::Closed { partial: false })
        ));
        assert!(matches!(
            reply(b"250-a\r\n").await,
            Err(ReadError::Closed { partial: true })
        ));
        assert!(matches!(
            reply(b"250 a").await,
            Err(ReadError::Closed { partial: true })
        ));
    }

    #[test]
    fn extensions_and_auth() {
        let ehlo = Reply {
            code: 250,
            lines: vec![
                "smtp.perimeter.test".into(),
                "PIPELINING".into(),
                "starttls".into(),
                "AUTH PLAIN login".into(),
                "AUTH=LOGIN XOAUTH2".into(),
            ],
        };
        let exts = extensions(&ehlo);
        assert_eq!(exts.len(), 4);
        assert!(has_extension(&exts, "STARTTLS"));
        assert!(!has_extension(&exts, "SIZE"));
        assert_eq!(
            auth_mechanisms(&exts).unwrap(),
            ["PLAIN", "LOGIN", "XOAUTH2"]
        );
        assert_eq!(auth_mechanisms(&exts[..2]), None);
        assert_eq!(auth_mechanisms(&["AUTH".to_string()]), Some(vec![]));
        // AUTHX is another extension, not AUTH.
        assert_eq!(auth_mechanisms(&["AUTHX PLAIN".to_string()]), None);
    }

    #[test]
    fn queue_ids() {
        let r = |t: &str| Reply {
            code: 250,
            lines: vec![t.into()],
        };
        assert_eq!(
            queue_id(&r("2.0.0 Ok: queued as 4dHx2V1Xz9z9vCH")).as_deref(),
            Some("4dHx2V1Xz9z9vCH")
        );
        assert_eq!(
            queue_id(&r("OK id=1uXyZ-000abc-7Q")).as_deref(),
            Some("1uXyZ-000abc-7Q")
        );
        assert_eq!(queue_id(&r("2.0.0 Message accepted")), None);
    }

    #[test]
    fn test_message_is_one_dot_stuffed_payload() {
        let m = test_message("<a@b.test>", "<c@d.test>", "h.test", "relay:25");
        assert!(m.contains(&format!("\r\nSubject: {TEST_SUBJECT}\r\n")));
        assert!(m.ends_with("No action is needed.\r\n.\r\n"), "{m}");
        assert!(!m.replace("\r\n", "").contains(['\r', '\n']));
        assert_eq!(dot_stuff(".a\r\nb\r\n.\r\n"), "..a\r\nb\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff("no end"), "no end\r\n.\r\n");
    }

    #[test]
    fn addresses_cannot_inject() {
        assert_eq!(path_arg("a@b.test").as_deref(), Some("<a@b.test>"));
        assert_eq!(path_arg("<a@b.test>").as_deref(), Some("<a@b.test>"));
        assert_eq!(path_arg("").as_deref(), Some("<>"));
        assert_eq!(path_arg("a@b\r\nRCPT TO:<x@y>"), None);
        assert_eq!(path_arg("a b@c"), None);
        assert!(!wire_safe("h\nx"));
    }

    #[test]
    fn secrets_are_scrubbed() {
        let secrets = vec![
            BASE64.encode("\0probe\0s3cret!"),
            BASE64.encode("s3cret!"),
            "s3cret!".to_string(),
        ];
        let mut f = Finding::new(
            Code::SmtpAuthFailed,
            "t",
            format!("535 echo {} s3cret!", secrets[0]),
        )
        .evidence("reply", vec![format!("535 {}", secrets[1])])
        .evidence("nested", serde_json::json!({"a": ["x s3cret! y"]}));
        scrub(&mut f, &secrets);
        let all = format!("{} {:?}", f.message, f.evidence);
        assert!(
            !all.contains("s3cret") && !all.contains(&secrets[0]) && !all.contains(&secrets[1]),
            "{all}"
        );
        assert_eq!(all.matches("<redacted>").count(), 4, "{all}");
    }

    // ---- conversations with a scripted server ------------------------------

    const PW: &str = "Pa55-w0rd";

    /// A plan with one relay (`smtp` is the inside of its YAML mapping).
    fn setup(smtp: &str, io_ms: u64, send_test_mail: bool) -> (ProbeContext, SmtpPlan) {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, format!("{PW}\n")).unwrap();
        let path = dir.path().join("perimeter.yml");
        let smtp = smtp.replace("PWFILE", &pw.display().to_string());
        std::fs::write(
            &path,
            format!(
                "allowed_networks: [127.0.0.0/8]\ntimeouts: {{connect: {io_ms}ms, handshake: {io_ms}ms, io: {io_ms}ms}}\nsmtp:\n  - {{host: 127.0.0.1, {smtp}}}\n"
            ),
        )
        .unwrap();
        let plan = config::load(&LoadOptions {
            perimeter: Some(path),
            send_test_mail,
            ..Default::default()
        })
        .unwrap();
        let relay = plan.smtp[0].clone();
        let ctx = ProbeContext {
            resolver: crate::probe::context::Resolver::new(&plan),
            tls: TlsSettings::new(&plan).unwrap(),
            plan: Arc::new(plan),
            ledger: Default::default(),
        };
        (ctx, relay)
    }

    #[derive(Debug, Default)]
    struct Seen {
        commands: Vec<String>,
        data: Vec<String>,
        raw: Vec<u8>,
    }

    type Script = Box<dyn Fn(&str) -> Option<String> + Send>;

    /// Sends `greeting`, then answers each command with `script` (`None`:
    /// stay silent); ends at QUIT or when the client goes.
    async fn serve(io: DuplexStream, greeting: Vec<u8>, script: Script) -> Seen {
        let mut io = BufReader::new(io);
        let mut seen = Seen::default();
        if io.write_all(&greeting).await.is_err() {
            return seen;
        }
        let mut in_data = false;
        loop {
            let mut buf = Vec::new();
            match io.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return seen,
                Ok(_) => {}
            }
            seen.raw.extend(&buf);
            let text = String::from_utf8_lossy(&buf).trim_end().to_string();
            let answer = if in_data {
                if text != "." {
                    seen.data.push(text);
                    continue;
                }
                in_data = false;
                script(".")
            } else {
                seen.commands.push(text.clone());
                let a = script(&text);
                in_data = text == "DATA" && a.as_deref().is_some_and(|a| a.starts_with("354"));
                a
            };
            if let Some(a) = answer {
                if io.write_all(a.as_bytes()).await.is_err() {
                    return seen;
                }
            }
            if text == "QUIT" {
                return seen;
            }
        }
    }

    async fn talk(
        smtp: &str,
        io_ms: u64,
        send: bool,
        greeting: &str,
        script: Script,
    ) -> (Vec<Finding>, Seen, Duration) {
        let (ctx, relay) = setup(smtp, io_ms, send);
        let (client, server) = tokio::io::duplex(1 << 16);
        let srv = tokio::spawn(serve(server, greeting.as_bytes().to_vec(), script));
        let started = Instant::now();
        let findings = converse(&ctx, &relay, client, "127.0.0.1:25".into()).await;
        let elapsed = started.elapsed();
        let seen = srv.await.unwrap();
        // Whatever happened, the password is in no finding.
        let all = format!("{findings:?}");
        assert!(
            !all.contains(PW) && !all.contains(&BASE64.encode(PW)),
            "{all}"
        );
        (findings, seen, elapsed)
    }

    fn codes(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.code.id()).collect()
    }

    fn ehlo(exts: &[&str]) -> String {
        let mut s = String::new();
        let mut all = vec!["fake.perimeter.test"];
        all.extend_from_slice(exts);
        for (i, e) in all.iter().enumerate() {
            s += &format!("250{}{e}\r\n", if i + 1 == all.len() { ' ' } else { '-' });
        }
        s
    }

    /// A postfix-like server advertising `exts`; `rcpt` answers RCPT TO.
    fn server(exts: &'static [&'static str], rcpt: &'static str) -> Script {
        Box::new(move |c: &str| {
            let verb = c
                .split([' ', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            Some(match verb.as_str() {
                "EHLO" => ehlo(exts),
                "MAIL" => "250 2.1.0 Ok\r\n".into(),
                "RCPT" => rcpt.into(),
                "DATA" => "354 End data with <CR><LF>.<CR><LF>\r\n".into(),
                "." => "250 2.0.0 Ok: queued as 4dHx2V1Xz9z9vCH\r\n".into(),
                "RSET" => "250 2.0.0 Ok\r\n".into(),
                "QUIT" => "221 2.0.0 Bye\r\n".into(),
                "AUTH" => "535 5.7.8 Error: authentication failed\r\n".into(),
                "STARTTLS" => "454 4.7.0 TLS not available due to local problem\r\n".into(),
                _ => "502 5.5.2 Error: command not recognized\r\n".into(),
            })
        })
    }

    const RELAY: &str =
        "port: 25, starttls: false, mail_from: probe@perimeter.test, rcpt_to: soc@perimeter.test";
    const BANNER: &str = "220-fake.perimeter.test ESMTP\r\n220 second line\r\n";

    #[tokio::test]
    async fn clear_relay_accepted_then_reset() {
        let (f, seen, _) = talk(
            RELAY,
            500,
            false,
            BANNER,
            server(&["PIPELINING", "8BITMIME"], "250 2.1.5 Ok\r\n"),
        )
        .await;
        assert_eq!(codes(&f), ["smtp:ready", "smtp:relay-accepted"]);
        assert_eq!(
            seen.commands,
            [
                "EHLO airgap-verify.invalid",
                "MAIL FROM:<probe@perimeter.test>",
                "RCPT TO:<soc@perimeter.test>",
                "RSET",
                "QUIT"
            ]
        );
        let ready = &f[0].evidence;
        assert_eq!(
            ready["banner"],
            serde_json::json!(["220-fake.perimeter.test ESMTP", "220 second line"])
        );
        assert_eq!(
            ready["extensions_before_tls"],
            serde_json::json!(["PIPELINING", "8BITMIME"])
        );
        assert_eq!(ready["extensions_after_tls"], Value::Null);
        assert_eq!(ready["tls_mode"], "none");
        assert_eq!(f[0].target, "127.0.0.1:25");
    }

    #[tokio::test]
    async fn test_mail_only_when_asked() {
        let (f, seen, _) = talk(RELAY, 500, true, BANNER, server(&[], "250 2.1.5 Ok\r\n")).await;
        assert_eq!(
            codes(&f),
            ["smtp:ready", "smtp:relay-accepted", "smtp:test-mail-sent"]
        );
        assert_eq!(f[2].evidence["queue_id"], "4dHx2V1Xz9z9vCH");
        assert!(seen
            .data
            .iter()
            .any(|l| l == "Subject: airgap-verify test message"));
        assert_eq!(&seen.commands[3..], ["DATA", "RSET", "QUIT"]);
    }

    #[tokio::test]
    async fn relay_refused_carries_the_reply() {
        let (f, seen, _) = talk(
            RELAY,
            500,
            true,
            BANNER,
            server(
                &[],
                "554 5.7.1 <soc@perimeter.test>: Relay access denied\r\n",
            ),
        )
        .await;
        assert_eq!(codes(&f), ["smtp:ready", "smtp:relay-refused"]);
        assert!(
            f[1].message.contains("Relay access denied"),
            "{}",
            f[1].message
        );
        assert_eq!(f[1].evidence["reply_code"], 554);
        assert_eq!(
            &seen.commands[3..],
            ["RSET", "QUIT"],
            "no DATA after a refusal"
        );
    }

    #[tokio::test]
    async fn no_password_in_clear() {
        // smtp-plain:587: AUTH in clear text, no STARTTLS; STARTTLS required.
        let smtp = "port: 587, username: probe, password_file: PWFILE, mail_from: a@b.test, rcpt_to: c@d.test";
        let (f, seen, _) = talk(
            smtp,
            500,
            false,
            BANNER,
            server(&["AUTH PLAIN LOGIN", "SIZE 1000"], "250 Ok\r\n"),
        )
        .await;
        assert_eq!(
            codes(&f),
            ["smtp:ready", "smtp:auth-in-clear", "smtp:no-starttls"]
        );
        assert_eq!(seen.commands, ["EHLO airgap-verify.invalid", "QUIT"]);
        let raw = String::from_utf8_lossy(&seen.raw);
        assert!(!raw.contains(PW) && !raw.contains(&BASE64.encode(format!("\0probe\0{PW}"))));
        assert!(
            f[2].message.contains("password was not sent"),
            "{}",
            f[2].message
        );
        assert_eq!(
            f[1].evidence["mechanisms"],
            serde_json::json!(["PLAIN", "LOGIN"])
        );
    }

    #[tokio::test]
    async fn auth_in_clear_is_reported_even_with_starttls() {
        let smtp = "port: 25, starttls: false";
        let (f, _, _) = talk(
            smtp,
            500,
            false,
            BANNER,
            server(&["AUTH LOGIN", "STARTTLS"], "250 Ok\r\n"),
        )
        .await;
        // STARTTLS refused (454) but not required: a note, not a failure.
        assert_eq!(codes(&f), ["smtp:ready", "smtp:auth-in-clear"]);
        assert!(f[0].evidence["notes"][0].as_str().unwrap().contains("454"));
    }

    #[tokio::test]
    async fn starttls_required() {
        let (f, seen, _) = talk(
            "port: 25",
            500,
            false,
            BANNER,
            server(&["PIPELINING"], "250 Ok\r\n"),
        )
        .await;
        assert_eq!(codes(&f), ["smtp:ready", "smtp:no-starttls"]);
        assert_eq!(seen.commands.last().unwrap(), "QUIT");
        let (f, _, _) = talk(
            "port: 25",
            500,
            false,
            BANNER,
            server(&["STARTTLS"], "250 Ok\r\n"),
        )
        .await;
        assert_eq!(codes(&f), ["smtp:ready", "smtp:no-starttls"]);
        assert!(
            f[1].message.contains("refused it (454 4.7.0"),
            "{}",
            f[1].message
        );
    }

    #[tokio::test]
    async fn credentials_without_tls_or_auth() {
        let smtp = "port: 25, starttls: false, username: probe, password_file: PWFILE, mail_from: a@b.test, rcpt_to: c@d.test";
        let (f, seen, _) = talk(smtp, 500, false, BANNER, server(&[], "250 Ok\r\n")).await;
        assert_eq!(codes(&f), ["smtp:ready", "smtp:auth-unavailable"]);
        assert_eq!(seen.commands, ["EHLO airgap-verify.invalid", "QUIT"]);
    }

    #[tokio::test]
    async fn starttls_injection_stops() {
        let script: Script = Box::new(|c: &str| {
            Some(match c {
                "STARTTLS" => "220 2.0.0 Ready to start TLS\r\n250-injected\r\n".into(),
                _ => ehlo(&["STARTTLS"]),
            })
        });
        let (f, seen, _) = talk("port: 25", 500, false, BANNER, script).await;
        assert_eq!(codes(&f), ["smtp:ready", "smtp:protocol-error"]);
        assert!(f[1].message.contains("after its 220 reply to STARTTLS"));
        assert_eq!(seen.commands, ["EHLO airgap-verify.invalid", "STARTTLS"]);
    }

    #[tokio::test]
    async fn tarpit_is_no_reply_within_the_deadline() {
        let (f, seen, elapsed) = talk(RELAY, 300, false, "", Box::new(|_: &str| None)).await;
        assert_eq!(codes(&f), ["net:no-reply"]);
        assert_eq!(f[0].evidence["step"], "greeting");
        assert_eq!(f[0].evidence["deadline_ms"], 300);
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(450),
            "{elapsed:?}"
        );
        assert!(seen.commands.is_empty());
        // Silent after the greeting: one I/O deadline more, no QUIT wait.
        let (f, _, elapsed) = talk(RELAY, 300, false, BANNER, Box::new(|_: &str| None)).await;
        assert_eq!(codes(&f), ["net:no-reply"]);
        assert_eq!(f[0].evidence["step"], "EHLO");
        assert!(elapsed < Duration::from_millis(450), "{elapsed:?}");
    }

    #[tokio::test]
    async fn garbage_greetings() {
        for greeting in [
            "SSH-2.0-OpenSSH_9.6\r\n".to_string(),
            "220 bare LF\n".to_string(),
            format!("220 {}\r\n", "x".repeat(50_000)),
            "220-a\r\n221 b\r\n".to_string(),
            "220 \x1b]0;owned\x07\r\n".to_string(),
        ] {
            let started = Instant::now();
            let (f, seen, _) = talk(RELAY, 500, false, &greeting, server(&[], "250 Ok\r\n")).await;
            assert_eq!(codes(&f), ["smtp:protocol-error"], "{greeting:.40}");
            assert_eq!(f[0].evidence["step"], "greeting");
            assert!(seen.commands.is_empty());
            assert!(started.elapsed() < Duration::from_millis(300));
        }
        let many = "220-x\r\n".repeat(MAX_LINES + 1);
        let (f, _, _) = talk(RELAY, 500, false, &many, server(&[], "250 Ok\r\n")).await;
        assert_eq!(codes(&f), ["smtp:protocol-error"]);
        // The server hangs up in the middle of its greeting.
        let (ctx, relay) = setup(RELAY, 500, false);
        let (client, mut server) = tokio::io::duplex(1 << 10);
        server.write_all(b"220 partial").await.unwrap();
        drop(server);
        let f = converse(&ctx, &relay, client, "127.0.0.1:25".into()).await;
        assert_eq!(codes(&f), ["smtp:protocol-error"]);
        assert!(
            f[0].message.contains("closed the connection in the middle"),
            "{}",
            f[0].message
        );
    }

    #[tokio::test]
    async fn refusals_end_with_quit() {
        let (f, seen, _) = talk(
            RELAY,
            500,
            false,
            "554 5.3.2 go away\r\n",
            server(&[], "250 Ok\r\n"),
        )
        .await;
        assert_eq!(codes(&f), ["smtp:bad-greeting"]);
        assert_eq!(
            f[0].evidence["banner"],
            serde_json::json!(["554 5.3.2 go away"])
        );
        assert_eq!(seen.commands, ["QUIT"]);
        let script: Script = Box::new(|c: &str| {
            Some(
                if c == "QUIT" {
                    "221 Bye\r\n"
                } else {
                    "502 5.5.1 no\r\n"
                }
                .into(),
            )
        });
        let (f, seen, _) = talk(RELAY, 500, false, BANNER, script).await;
        assert_eq!(codes(&f), ["smtp:bad-greeting"]);
        assert!(f[0].message.contains("refused EHLO"));
        assert_eq!(seen.commands, ["EHLO airgap-verify.invalid", "QUIT"]);
    }

    #[tokio::test]
    async fn broken_replies_to_commands() {
        let script: Script = Box::new(|c: &str| {
            Some(
                if c.starts_with("EHLO") {
                    "250-a\r\n250-b\r\n251 c\r\n"
                } else {
                    ""
                }
                .into(),
            )
        });
        let (f, seen, _) = talk(RELAY, 500, false, BANNER, script).await;
        assert_eq!(codes(&f), ["smtp:protocol-error"]);
        assert_eq!(f[0].evidence["step"], "EHLO");
        assert_eq!(seen.commands.len(), 1, "no QUIT once out of step");
        // EHLO answered with a code that is not 250.
        let (f, _, _) = talk(
            RELAY,
            500,
            false,
            BANNER,
            Box::new(|_: &str| Some("221 x\r\n".into())),
        )
        .await;
        assert_eq!(codes(&f), ["smtp:bad-greeting"]);
    }

    #[test]
    fn secret_forms_cover_the_wire() {
        let (_, mut relay) = setup(
            "port: 25, username: probe, password_file: PWFILE",
            500,
            false,
        );
        assert_eq!(relay.password, Some(Secret::for_test(PW)));
        let forms = secret_forms(&relay);
        assert!(forms.contains(&PW.to_string()));
        assert!(forms.contains(&BASE64.encode(format!("\0probe\0{PW}"))));
        relay.password = None;
        assert!(secret_forms(&relay).is_empty());
    }
}
