//! The message `--send-test-mail` sends: headers, a body that says what it
//! is, dot-stuffed, with its final `.`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Subject of the message `--send-test-mail` sends.
pub const TEST_SUBJECT: &str = "airgap-verify test message";

// ---- the test message --------------------------------------------------------

/// The DATA payload of the test message, dot-stuffed, with its final `.`.
pub(super) fn test_message(from: &str, to: &str, helo: &str, target: &str) -> String {
    let now = SystemTime::now();
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let from = if from == "<>" {
        format!("<postmaster@{helo}>")
    } else {
        from.to_string()
    };
    let text = format!(
        "From: airgap-verify {from}\r\n\
         To: {to}\r\n\
         Subject: {TEST_SUBJECT}\r\n\
         Date: {}\r\n\
         Message-ID: <{nanos:x}.{:x}@{helo}>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         Auto-Submitted: auto-generated\r\n\
         \r\n\
         This message was sent by airgap-verify (--send-test-mail) through the\r\n\
         relay {target} to check that the platform's notifications are delivered.\r\n\
         No action is needed.\r\n",
        crate::timefmt::rfc5322_date(now),
        std::process::id()
    );
    dot_stuff(&text)
}

/// DATA content (CRLF lines) with leading dots doubled and the final `.`.
pub(super) fn dot_stuff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.is_empty() && !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}
