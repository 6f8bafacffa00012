//! A fault-injecting front for the S3 API server: a TCP proxy in front of moto that reads just
//! enough HTTP/1.1 to see where requests and responses end, and applies faults chosen by rules
//! that a test can change while the binary under test runs.
//!
//! Each request goes to a fresh upstream connection (moto closes after every response anyway).
//! After any fault the client connection is closed, so nothing stale is ever read from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// What to do with a matching request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer this status without forwarding (S3 never sees it), with S3's error code for it:
    /// 404 NoSuchUpload, 503 SlowDown, else InternalError.
    Status(u16),
    /// Close the connection without forwarding.
    Drop,
    /// Forward, read S3's whole reply, then close without sending it: applied, reply lost.
    LoseReply,
    /// Forward and send only part of the reply: half its body, or half its head when bodiless.
    CutReply,
    /// Wait this long, then forward normally.
    Delay(Duration),
    /// Drop this request and every connection until this long from now (an outage).
    Outage(Duration),
}

impl Fault {
    /// The counter this fault adds to.
    fn name(self) -> &'static str {
        match self {
            Fault::Status(_) => "status",
            Fault::Drop => "drop",
            Fault::LoseReply => "lose",
            Fault::CutReply => "cut",
            Fault::Delay(_) => "delay",
            Fault::Outage(_) => "outage",
        }
    }
}

/// When to apply a fault: method, substrings of the request line or (small) body, how often.
#[derive(Debug, Clone)]
pub struct Rule {
    method: &'static str,
    needles: Vec<&'static str>,
    unless: Vec<&'static str>,
    fault: Fault,
    skip: usize,
    times: Option<usize>,
    percent: u64,
}

impl Rule {
    /// `fault` on every request with `method` ("" for any).
    pub fn new(method: &'static str, fault: Fault) -> Rule {
        Rule {
            method,
            needles: Vec::new(),
            unless: Vec::new(),
            fault,
            skip: 0,
            times: None,
            percent: 100,
        }
    }
    /// Only requests whose line or body contains `needle`.
    pub fn with(mut self, needle: &'static str) -> Rule {
        self.needles.push(needle);
        self
    }
    /// Not requests whose line or body contains `needle`.
    pub fn unless(mut self, needle: &'static str) -> Rule {
        self.unless.push(needle);
        self
    }
    /// Lets the first `n` matching requests pass.
    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }
    /// Applies to `n` requests, then no more.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
    /// Applies to about `p` % of matching requests (drawn from the front's seeded generator).
    pub fn percent(mut self, p: u64) -> Rule {
        self.percent = p;
        self
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    outage_until: Option<Instant>,
    rng: u64,
    counts: HashMap<String, usize>,
}

impl State {
    /// The fault for one request, first matching rule wins; counts what it decides.
    fn decide(&mut self, method: &str, text: &str) -> Option<Fault> {
        if self.outage_until.is_some_and(|t| Instant::now() < t) {
            *self.counts.entry("refused".into()).or_default() += 1;
            return Some(Fault::Drop);
        }
        *self.counts.entry("requests".into()).or_default() += 1;
        for i in 0..self.rules.len() {
            let r = &self.rules[i];
            let matches = (r.method.is_empty() || r.method == method)
                && r.needles.iter().all(|n| text.contains(n))
                && !r.unless.iter().any(|n| text.contains(n))
                && r.times != Some(0);
            if !matches {
                continue;
            }
            if r.skip > 0 {
                self.rules[i].skip -= 1;
                continue;
            }
            // xorshift64: reproducible from the seed, no dependency.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if r.percent < 100 && self.rng % 100 >= r.percent {
                continue;
            }
            let r = &mut self.rules[i];
            r.times = r.times.map(|n| n - 1);
            let fault = r.fault;
            if let Fault::Outage(d) = fault {
                self.outage_until = Some(Instant::now() + d);
            }
            *self.counts.entry(fault.name().into()).or_default() += 1;
            *self
                .counts
                .entry(format!("{}:{method}", fault.name()))
                .or_default() += 1;
            return Some(fault);
        }
        None
    }
}

/// A running front; clones share the rules and counters.
#[derive(Clone)]
pub struct S3Front {
    /// Endpoint URL to give the binary under test.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl S3Front {
    /// Starts a front before `upstream` (an `http://host:port` URL); it runs until the test ends.
    pub async fn start(upstream: &str) -> S3Front {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            rng: 0x9E37_79B9_7F4A_7C15,
            ..State::default()
        }));
        let upstream = upstream.trim_start_matches("http://").to_string();
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let (state, upstream) = (shared.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &state).await;
                });
            }
        });
        S3Front { url, state }
    }

    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Removes every rule and ends any outage.
    pub fn clear(&self) {
        let mut s = self.state.lock().unwrap();
        s.rules.clear();
        s.outage_until = None;
    }

    /// Seeds the generator behind [`Rule::percent`].
    pub fn seed(&self, seed: u64) {
        self.state.lock().unwrap().rng = seed | 1;
    }

    /// How often something happened: a fault's name ("status", "drop", "lose", "cut", "delay",
    /// "outage"), the same for one method ("status:HEAD"), "refused" (dropped during an outage)
    /// or "requests" (seen outside outages).
    pub fn count(&self, what: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .counts
            .get(what)
            .copied()
            .unwrap_or(0)
    }
}

/// Serves one client connection until it closes or a fault closes it.
async fn serve(client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let (cr, mut cw) = client.into_split();
    let mut cr = BufReader::new(cr);
    while let Some((head, body)) = read_message(&mut cr, None).await? {
        let text = String::from_utf8_lossy(&head);
        let line = text.lines().next().unwrap_or_default().to_string();
        let method = line.split(' ').next().unwrap_or_default().to_string();
        let mut haystack = line.clone();
        if body.len() < 64 * 1024 {
            haystack.push_str(&String::from_utf8_lossy(&body));
        }
        let fault = state.lock().unwrap().decide(&method, &haystack);
        match fault {
            Some(Fault::Drop | Fault::Outage(_)) => return Ok(()),
            Some(Fault::Status(code)) => {
                let code_name = match code {
                    404 => "NoSuchUpload",
                    503 => "SlowDown",
                    _ => "InternalError",
                };
                let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code_name}</Code><Message>status {code} from the test front</Message></Error>");
                let reply = format!("HTTP/1.1 {code} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                return cw.write_all(reply.as_bytes()).await;
            }
            Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
            _ => {}
        }
        let mut server = BufReader::new(TcpStream::connect(upstream).await?);
        server.get_mut().write_all(&head).await?;
        server.get_mut().write_all(&body).await?;
        let (rhead, rbody) = read_message(&mut server, Some(&method))
            .await?
            .ok_or_else(|| std::io::Error::other("S3 server closed without a reply"))?;
        match fault {
            Some(Fault::LoseReply) => return Ok(()),
            Some(Fault::CutReply) => {
                let cut = if rbody.is_empty() {
                    rhead.len() / 2
                } else {
                    rhead.len() + rbody.len() / 2
                };
                let whole = [rhead, rbody].concat();
                return cw.write_all(&whole[..cut]).await;
            }
            _ => {
                cw.write_all(&rhead).await?;
                cw.write_all(&rbody).await?;
            }
        }
        if String::from_utf8_lossy(&rhead)
            .to_ascii_lowercase()
            .contains("connection: close")
        {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads one HTTP/1.1 message: its head and its body (Content-Length, or up to EOF for a
/// response without it; object_store and moto never send chunked bodies). `request_method` is
/// set for responses (a reply to HEAD has no body). None at a clean EOF before the message.
async fn read_message(
    r: &mut (impl AsyncBufRead + Unpin),
    request_method: Option<&str>,
) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut head = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut head).await?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let header = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let status = text.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok());
    let mut body = Vec::new();
    let bodiless = request_method.is_some_and(|m| m == "HEAD" || matches!(status, Some(204 | 304)));
    if bodiless {
        return Ok(Some((head, body)));
    }
    if let Some(len) = header("content-length:") {
        body.resize(len.parse().unwrap_or(0), 0);
        r.read_exact(&mut body).await?;
    } else if request_method.is_some() {
        r.read_to_end(&mut body).await?;
    }
    Ok(Some((head, body)))
}
