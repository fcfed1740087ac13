//! The leaderboard server on loopback, against SQLite and (when `KTUNE_TEST_POSTGRES`
//! names one) a real PostgreSQL: submit, list, rank, hide, delete; hostile input; 50
//! concurrent submissions from several clients; the rate limit.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use ktune_board::server::Config;
use ktune_board::store::Store;
use ktune_board::validate::Limits;
use ktune_results::db::Database;

const TOKEN: &str = "test-admin-token";

/// A running server: its address, and a sender that stops it.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(db: &str, config: Config) -> Server {
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let db = db.to_string();
        let done = thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let store = Store::open(&db).await.expect("store");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                let shutdown = async {
                    let _ = stop_rx.await;
                };
                ktune_board::server::serve(listener, store.clone(), config, shutdown)
                    .await
                    .expect("serve");
                store.close().await;
            });
        });
        let addr = rx.recv().expect("server address");
        Server {
            addr,
            stop: Some(stop_tx),
            done: Some(done),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.join();
        }
    }
}

/// Status and body of a request.
fn call(method: &str, url: &str, token: Option<&str>, body: Option<&[u8]>) -> (u16, String) {
    let mut req = ureq::request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let r = match body {
        Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
        None => req.call(),
    };
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn get(s: &Server, path: &str) -> (u16, String) {
    call("GET", &s.url(path), None, None)
}

fn post(s: &Server, body: &[u8]) -> (u16, serde_json::Value) {
    let (status, text) = call("POST", &s.url("/api/submit"), None, Some(body));
    let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, v)
}

fn shipped() -> Database {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../results/db"));
    ktune_results::db::load_dir(dir)
        .expect("shipped databases")
        .into_iter()
        .next()
        .expect("one")
}

fn config(per_minute: usize) -> Config {
    Config {
        limits: Limits {
            max_bytes: 1 << 20,
            margin: 0.1,
        },
        per_minute,
        admin_token: Some(TOKEN.into()),
    }
}

fn suite(db: &str) {
    let s = Server::start(db, config(10_000));
    let (status, page) = get(&s, "/");
    assert_eq!(status, 200, "{page}");

    // Submit, resubmit.
    let base = shipped();
    let body = base.to_json();
    let (status, v) = post(&s, body.as_bytes());
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["status"], "accepted");
    let id = v["id"].as_str().expect("id").to_string();
    let (status, v) = post(&s, body.as_bytes());
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("duplicate")),
        "{v}"
    );
    assert_eq!(v["id"], id.as_str());

    // Listed and ranked.
    let machine = base.machine.hardware.id.clone();
    let (status, page) = get(&s, "/");
    assert_eq!(status, 200);
    assert!(page.contains(&machine), "the machine is listed");
    let (_, problems) = get(&s, "/api/problems");
    let problems: serde_json::Value = serde_json::from_str(&problems).unwrap();
    let slug = problems[0]["slug"].as_str().expect("a problem").to_string();
    let (status, page) = get(&s, &format!("/rank/{slug}"));
    assert_eq!(status, 200);
    assert!(page.contains("by-throughput") && page.contains("by-fraction"));
    let (status, rank) = get(&s, &format!("/api/rank/{slug}"));
    assert_eq!(status, 200);
    let rank: serde_json::Value = serde_json::from_str(&rank).unwrap();
    assert_eq!(rank["by_throughput"][0]["machine_id"], machine.as_str());
    assert_eq!(get(&s, &format!("/machine/{machine}")).0, 200);
    assert_eq!(get(&s, "/machine/0000000000000000").0, 404);
    assert_eq!(get(&s, "/rank/nothing.f32.1x1x1").0, 404);
    let (status, svg) = get(&s, &format!("/machine/{machine}/roofline.svg"));
    assert_eq!(status, 200);
    assert!(svg.contains("<svg"));

    // Hostile input.
    // Just over the limit: read, and refused with the reason.
    let (status, v) = post(&s, &vec![b' '; (1 << 20) + 1000]);
    assert_eq!(status, 413, "{v}");
    assert!(v["reasons"].to_string().contains("limit"), "{v}");
    // Far over it: cut off while sending (413 if the client reads the answer in time).
    let far = ureq::post(&s.url("/api/submit")).send_bytes(&vec![b' '; 8 << 20]);
    match far {
        Err(ureq::Error::Status(code, _)) => assert_eq!(code, 413),
        Err(ureq::Error::Transport(_)) => {}
        Ok(r) => panic!("an 8 MiB body was taken: {}", r.status()),
    }
    let half = &body.as_bytes()[..body.len() / 2];
    for bad in [&b"{"[..], b"not json", half] {
        let (status, v) = post(&s, bad);
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["status"], "refused");
    }
    let wrong_schema = body.replacen("ktune.db/2", "ktune.db/9", 1);
    let (status, v) = post(&s, wrong_schema.as_bytes());
    assert_eq!(status, 422, "{v}");
    let mut fast = base.clone();
    fast.results[0].gflops *= 1000.0;
    let (status, v) = post(&s, fast.to_json().as_bytes());
    assert_eq!(status, 422, "{v}");
    assert!(v["reasons"].to_string().contains("above"), "{v}");
    // A script in the label is stored and escaped; in the CPU name it breaks the id.
    let mut evil = base.clone();
    evil.machine.label = "<script>document.title='pwned'</script>\"quoted\" & 'q'".into();
    let (status, v) = post(&s, evil.to_json().as_bytes());
    assert_eq!(status, 201, "{v}");
    let evil_id = v["id"].as_str().unwrap().to_string();
    for path in [
        "/".to_string(),
        format!("/machine/{machine}"),
        format!("/rank/{slug}"),
    ] {
        let (_, page) = get(&s, &path);
        assert!(!page.contains("<script>document"), "{path}: raw script");
        assert!(
            page.contains("&lt;script&gt;"),
            "{path}: escaped label missing"
        );
    }
    let mut evil_cpu = base.clone();
    evil_cpu.machine.hardware.cpu_model = "<img src=x onerror=alert(1)>".into();
    let (status, v) = post(&s, evil_cpu.to_json().as_bytes());
    assert_eq!(status, 422, "{v}");
    assert!(v["reasons"].to_string().contains("does not match"), "{v}");

    // Administration.
    let hide = s.url(&format!("/api/admin/submissions/{evil_id}/hide"));
    assert_eq!(call("POST", &hide, Some("wrong"), Some(b"")).0, 401);
    assert_eq!(call("POST", &hide, None, Some(b"")).0, 401);
    assert_eq!(call("POST", &hide, Some(TOKEN), Some(b"")).0, 200);
    let (_, page) = get(&s, &format!("/machine/{machine}"));
    assert!(
        !page.contains("&lt;script&gt;"),
        "a hidden submission is not shown"
    );
    let gone = s.url(&format!("/api/admin/submissions/{evil_id}"));
    assert_eq!(call("DELETE", &gone, Some("wrong"), None).0, 401);
    assert_eq!(call("DELETE", &gone, Some(TOKEN), None).0, 200);
    assert_eq!(call("DELETE", &gone, Some(TOKEN), None).0, 404);

    // Load: 50 distinct submissions from 5 clients at once; nothing lost or duplicated.
    let before = count(&s);
    let url = s.url("/api/submit");
    let clients: Vec<_> = (0..5)
        .map(|c| {
            let url = url.clone();
            let base = base.clone();
            thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        let mut d = base.clone();
                        d.machine.label = format!("load client {c} submission {i}");
                        let (status, _) = call("POST", &url, None, Some(d.to_json().as_bytes()));
                        status
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    for c in clients {
        let statuses = c.join().expect("client");
        assert!(statuses.iter().all(|&s| s == 201), "{statuses:?}");
    }
    assert_eq!(count(&s), before + 50);
    // Each of them again: all duplicates, none stored twice.
    for c in 0..5 {
        let mut d = base.clone();
        d.machine.label = format!("load client {c} submission 0");
        assert_eq!(post(&s, d.to_json().as_bytes()).0, 200);
    }
    assert_eq!(count(&s), before + 50);
    drop(s);

    // The rate limit, on a server that allows 3 a minute.
    let s = Server::start(db, config(3));
    for i in 0..3 {
        let mut d = base.clone();
        d.machine.label = format!("rate {i}");
        assert_eq!(post(&s, d.to_json().as_bytes()).0, 201);
    }
    let (status, v) = post(&s, body.as_bytes());
    assert_eq!(status, 429, "{v}");
}

fn count(s: &Server) -> usize {
    let (_, list) = get(s, "/api/submissions");
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    v.as_array().map_or(0, |a| a.len())
}

#[test]
fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("board.sqlite");
    suite(db.to_str().unwrap());
}

#[test]
fn on_postgres() {
    let Some(url) = std::env::var("KTUNE_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        let required = std::env::var("KTUNE_REQUIRE").unwrap_or_default();
        assert!(
            !required.split(',').any(|r| r.trim() == "postgres"),
            "KTUNE_REQUIRE has postgres, but KTUNE_TEST_POSTGRES names no server"
        );
        eprintln!("skipped: set KTUNE_TEST_POSTGRES=postgres://... to run the suite on PostgreSQL");
        return;
    };
    suite(&url);
}
