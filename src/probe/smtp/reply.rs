//! The SMTP language on the wire: replies read strictly and bounded
//! ([`MAX_LINE`] bytes a line, [`MAX_LINES`] lines a reply, CRLF endings,
//! one code per reply, no control characters), EHLO extensions, queue ids
//! and the addresses a command may carry.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Longest reply line accepted, without its CRLF (RFC 5321 asks for 512).
pub const MAX_LINE: usize = 4096;
/// Most lines accepted in one reply.
pub const MAX_LINES: usize = 100;
/// Longest excerpt of server data quoted in a message.
const EXCERPT: usize = 80;

// ---- replies ---------------------------------------------------------------

/// One line of a reply: `250-PIPELINING` is code 250, not last, text
/// `PIPELINING`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine {
    pub code: u16,
    /// `250 ...` (or a bare `250`) ends the reply, `250-...` does not.
    pub last: bool,
    pub text: String,
}

/// A complete reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The lines as the server wrote them (`250-PIPELINING`, `250 OK`).
    pub fn display_lines(&self) -> Vec<String> {
        let n = self.lines.len();
        self.lines
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let sep = if i + 1 == n { ' ' } else { '-' };
                format!("{}{sep}{t}", self.code).trim_end().to_string()
            })
            .collect()
    }

    /// One line for a message: the code and the text, bounded.
    pub fn summary(&self) -> String {
        let text = self.lines.join(" ");
        let mut s = format!("{} {}", self.code, text.trim())
            .trim_end()
            .to_string();
        if s.chars().count() > 300 {
            s = s.chars().take(300).collect::<String>() + "...";
        }
        s
    }
}

/// Why no reply could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The connection ended before a complete reply (`partial`: some of the
    /// reply had arrived).
    Closed {
        partial: bool,
    },
    /// Not a valid SMTP reply; the text says why.
    Malformed(String),
    Io(std::io::Error),
}

/// Server bytes quoted in a message: escaped, bounded.
pub(super) fn excerpt(b: &[u8]) -> String {
    let shown = b[..b.len().min(EXCERPT)].escape_ascii().to_string();
    if b.len() > EXCERPT {
        format!("`{shown}...`")
    } else {
        format!("`{shown}`")
    }
}

/// Parses one reply line, `raw` including its CRLF. Pure, for fuzzing.
pub fn parse_reply_line(raw: &[u8]) -> Result<ReplyLine, String> {
    let body = match raw {
        [body @ .., b'\r', b'\n'] => body,
        [.., b'\n'] => {
            return Err(format!(
                "a reply line ends with a bare LF instead of CRLF: {}",
                excerpt(raw)
            ))
        }
        _ => {
            return Err(format!(
                "a reply line is not terminated by CRLF: {}",
                excerpt(raw)
            ))
        }
    };
    if body.len() > MAX_LINE {
        return Err(format!(
            "a reply line is longer than {MAX_LINE} bytes: {}",
            excerpt(body)
        ));
    }
    let code = match body {
        [a @ b'2'..=b'5', b @ b'0'..=b'5', c @ b'0'..=b'9', ..] => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => {
            return Err(format!(
                "not an SMTP reply (no reply code 200-559 at the start of the line): {}",
                excerpt(body)
            ))
        }
    };
    let (last, text) = match body.get(3) {
        None => (true, &body[3..]),
        Some(b' ') => (true, &body[4..]),
        Some(b'-') => (false, &body[4..]),
        Some(_) => {
            return Err(format!(
                "not an SMTP reply (the code is not followed by a space or a hyphen): {}",
                excerpt(body)
            ))
        }
    };
    let text = String::from_utf8_lossy(text);
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "a reply line holds control characters: {}",
            excerpt(body)
        ));
    }
    Ok(ReplyLine {
        code,
        last,
        text: text.trim_end().to_string(),
    })
}

/// Assembles reply lines into a reply: one code throughout, at most
/// [`MAX_LINES`] lines. Pure, for fuzzing.
#[derive(Debug, Default)]
pub struct ReplyAssembler {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyAssembler {
    /// True once a line of the reply has been pushed.
    pub fn started(&self) -> bool {
        self.code.is_some()
    }

    /// Adds a line; returns the reply once its last line has come.
    pub fn push(&mut self, line: ReplyLine) -> Result<Option<Reply>, String> {
        if let Some(code) = self.code {
            if code != line.code {
                return Err(format!(
                    "a multi-line reply changes its code from {code} to {}",
                    line.code
                ));
            }
        }
        self.code = Some(line.code);
        self.lines.push(line.text);
        if line.last {
            self.code = None;
            return Ok(Some(Reply {
                code: line.code,
                lines: std::mem::take(&mut self.lines),
            }));
        }
        if self.lines.len() >= MAX_LINES {
            return Err(format!("a reply runs past {MAX_LINES} lines"));
        }
        Ok(None)
    }
}

/// Reads one complete reply. Never reads more than [`MAX_LINE`] + 2 bytes
/// in search of a line end, nor more than [`MAX_LINES`] lines. No deadline
/// here: the caller sets it.
pub async fn read_reply<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Reply, ReadError> {
    let limit = (MAX_LINE + 2) as u64;
    let mut asm = ReplyAssembler::default();
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        (&mut *r)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(ReadError::Io)?;
        if buf.last() != Some(&b'\n') {
            if buf.len() as u64 >= limit {
                return Err(ReadError::Malformed(format!(
                    "a reply line is longer than {MAX_LINE} bytes: {}",
                    excerpt(&buf)
                )));
            }
            return Err(ReadError::Closed {
                partial: !buf.is_empty() || asm.started(),
            });
        }
        let line = parse_reply_line(&buf).map_err(ReadError::Malformed)?;
        if let Some(reply) = asm.push(line).map_err(ReadError::Malformed)? {
            return Ok(reply);
        }
    }
}

// ---- EHLO extensions ---------------------------------------------------------

/// The extensions of an EHLO reply (every line after the first).
pub fn extensions(ehlo: &Reply) -> Vec<String> {
    ehlo.lines
        .iter()
        .skip(1)
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

pub(super) fn keyword(ext: &str) -> &str {
    ext.split([' ', '=']).next().unwrap_or("")
}

/// True when the extension `name` is advertised.
pub fn has_extension(exts: &[String], name: &str) -> bool {
    exts.iter().any(|e| keyword(e).eq_ignore_ascii_case(name))
}

/// The SASL mechanisms advertised (`AUTH PLAIN LOGIN`, also the old
/// `AUTH=LOGIN`), upper-cased; `None` when AUTH is not advertised.
pub fn auth_mechanisms(exts: &[String]) -> Option<Vec<String>> {
    let mut found = false;
    let mut mechs: Vec<String> = Vec::new();
    for e in exts {
        if !keyword(e).eq_ignore_ascii_case("AUTH") {
            continue;
        }
        found = true;
        for m in e[4..].split([' ', '=']).filter(|m| !m.is_empty()) {
            let m = m.to_ascii_uppercase();
            if !mechs.contains(&m) {
                mechs.push(m);
            }
        }
    }
    found.then_some(mechs)
}

/// The queue id in the reply to the end of DATA (`250 2.0.0 Ok: queued as
/// 4dHx2V1Xz9z9vCH`, exim's `250 OK id=1uX...`).
pub fn queue_id(reply: &Reply) -> Option<String> {
    let text = reply.lines.join(" ");
    let lower = text.to_ascii_lowercase();
    for marker in ["queued as ", "id="] {
        if let Some(i) = lower.find(marker) {
            let id: String = text[i + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
                .collect();
            if !id.is_empty() {
                return Some(id);
            }
        }
    }
    None
}

/// A value from the configuration that goes on the wire inside a command:
/// no control character (CRLF would inject a command), no space, no angle
/// bracket.
pub(super) fn wire_safe(s: &str) -> bool {
    s.len() <= 320
        && !s
            .chars()
            .any(|c| c.is_control() || matches!(c, ' ' | '<' | '>'))
}

/// `<addr>` from `addr` or `<addr>` as configured.
pub(super) fn path_arg(addr: &str) -> Option<String> {
    let a = addr.trim();
    let a = a
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(a);
    wire_safe(a).then(|| format!("<{a}>"))
}
