//! `ktune submit`: sends a database file to a leaderboard server, retrying network errors
//! with backoff, and reads the server's verdict.

use std::time::Duration;

use serde::Deserialize;

/// What the server said, or that it could not be reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Stored; its id and page.
    Accepted {
        /// The submission's id.
        id: String,
        /// Its machine's page on the server.
        url: String,
    },
    /// The same database was stored before.
    Duplicate {
        /// The submission's id.
        id: String,
        /// Its machine's page on the server.
        url: String,
    },
    /// Refused, with the HTTP status and every reason.
    Refused {
        /// The HTTP status.
        status: u16,
        /// Why.
        reasons: Vec<String>,
    },
    /// No answer after the retries.
    Unreachable(String),
}

#[derive(Deserialize)]
struct Verdict {
    #[serde(default)]
    id: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    reasons: Vec<String>,
}

/// How to send.
#[derive(Debug, Clone)]
pub struct Options {
    /// Attempts after the first, on network errors, 429 and 5xx answers.
    pub retries: u32,
    /// The first wait; doubled after each attempt.
    pub backoff: Duration,
    /// Per attempt.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retries: 4,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Sends `body` (a database file's text) to `server` (`http://host:port`, no path), saying
/// each retry through `note`.
pub fn submit(server: &str, body: &str, opts: &Options, mut note: impl FnMut(&str)) -> Outcome {
    let url = format!("{}/api/submit", server.trim_end_matches('/'));
    let agent = ureq::AgentBuilder::new().timeout(opts.timeout).build();
    let mut wait = opts.backoff;
    let mut last = String::new();
    for attempt in 0..=opts.retries {
        if attempt > 0 {
            note(&format!(
                "{last}; trying again in {:.1} s ({attempt} of {})",
                wait.as_secs_f64(),
                opts.retries
            ));
            std::thread::sleep(wait);
            wait *= 2;
        }
        let answer = agent
            .post(&url)
            .set("Content-Type", "application/json")
            .send_string(body);
        let (status, text) = match answer {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(ureq::Error::Transport(t)) => {
                last = format!("could not reach {url}: {t}");
                continue;
            }
        };
        if status == 429 || status >= 500 {
            last = format!("the server answered {status}");
            continue;
        }
        let v: Option<Verdict> = serde_json::from_str(&text).ok();
        let base = server.trim_end_matches('/');
        return match (status, v) {
            (201, Some(v)) => Outcome::Accepted {
                id: v.id,
                url: format!("{base}{}", v.url),
            },
            (200, Some(v)) => Outcome::Duplicate {
                id: v.id,
                url: format!("{base}{}", v.url),
            },
            (_, Some(v)) if !v.reasons.is_empty() => Outcome::Refused {
                status,
                reasons: v.reasons,
            },
            _ => Outcome::Refused {
                status,
                reasons: vec![format!(
                    "the server answered {status}: {}",
                    text.chars().take(300).collect::<String>()
                )],
            },
        };
    }
    Outcome::Unreachable(last)
}
