//! `ktune serve`: the leaderboard over HTTP (axum), on a [`Store`].
//!
//! Pages: `/` (every problem and machine), `/rank/SLUG` (a problem's machines by
//! throughput and by fraction of their roofline), `/machine/ID` (hardware, ceilings,
//! results) and `/machine/ID/roofline.svg`. JSON: `/api/problems`, `/api/rank/SLUG`,
//! `/api/machines`, `/api/machine/ID` (its newest database), `/api/submissions`, and
//! `POST /api/submit` (a database file as the body). Administration, with
//! `Authorization: Bearer TOKEN`: `POST /api/admin/submissions/ID/hide` and `.../show`,
//! `DELETE /api/admin/submissions/ID`.
//!
//! Submissions are validated ([`crate::validate`]) and limited per client address (a
//! sliding minute); the answer is JSON: `status` (`accepted`, `duplicate`, `refused`),
//! `id`, `reasons`, `url`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::pages::{self, Site};
use crate::store::{Inserted, Store};
use crate::validate::{self, Limits};
use crate::view::{self, Entry, RankKey};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// What submissions may be.
    pub limits: Limits,
    /// Submissions per client address per minute.
    pub per_minute: usize,
    /// The administrators' token; administration is refused without one.
    pub admin_token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            per_minute: 30,
            admin_token: None,
        }
    }
}

struct AppState {
    store: Store,
    config: Config,
    recent: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

type Shared = Arc<AppState>;

/// The application: every route over `store`.
pub fn app(store: Store, config: Config) -> Router {
    let body_limit = config.limits.max_bytes + (64 << 10);
    let state = Arc::new(AppState {
        store,
        config,
        recent: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/", get(index))
        .route("/rank/{slug}", get(rank_page))
        .route("/machine/{id}", get(machine_page))
        .route("/machine/{id}/roofline.svg", get(machine_svg))
        .route("/api/problems", get(api_problems))
        .route("/api/rank/{slug}", get(api_rank))
        .route("/api/machines", get(api_machines))
        .route("/api/machine/{id}", get(api_machine))
        .route("/api/submissions", get(api_submissions))
        .route("/api/submit", post(submit))
        .route("/api/admin/submissions/{id}/hide", post(hide))
        .route("/api/admin/submissions/{id}/show", post(show))
        .route("/api/admin/submissions/{id}", delete(remove))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(
        listener,
        app(store, config).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving")
}

/// An error page or JSON error with its status; internal errors are logged, not shown.
fn internal(e: anyhow::Error) -> Response {
    eprintln!("error: {e:#}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
}

/// No script, style only inline, images only from the board: an injected script could not
/// run even if escaping failed.
const CSP: &str = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'";

fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        pages::not_found(Site::Server, what),
    )
        .into_response()
}

/// A handler's answer: `Err` is an answer too (an error page), so that `?` returns it.
type Answer = Result<Response, Response>;

async fn entries(s: &Shared) -> Result<Vec<Entry>, Response> {
    s.store.visible().await.map_err(internal)
}

async fn index(State(s): State<Shared>) -> Answer {
    Ok(html(pages::index(Site::Server, &entries(&s).await?)))
}

fn key_of(entries: &[Entry], slug: &str) -> Option<RankKey> {
    view::keys(entries).into_iter().find(|k| k.slug() == slug)
}

async fn rank_page(State(s): State<Shared>, Path(slug): Path<String>) -> Answer {
    let e = entries(&s).await?;
    Ok(match key_of(&e, &slug) {
        Some(k) => html(pages::ranking(Site::Server, &k, &view::rank(&e, &k))),
        None => not_found(&format!("no results for problem {slug}")),
    })
}

fn newest<'a>(entries: &'a [Entry], id: &str) -> Option<&'a Entry> {
    view::machines(entries)
        .into_iter()
        .find(|e| e.db.machine.hardware.id == id)
}

async fn machine_page(State(s): State<Shared>, Path(id): Path<String>) -> Answer {
    let e = entries(&s).await?;
    Ok(match newest(&e, &id) {
        Some(m) => html(pages::machine(Site::Server, m)),
        None => not_found(&format!("no machine {id}")),
    })
}

async fn machine_svg(State(s): State<Shared>, Path(id): Path<String>) -> Answer {
    let e = entries(&s).await?;
    let m = newest(&e, &id).ok_or_else(|| not_found(&format!("no machine {id}")))?;
    Ok(match pages::machine_svg(m) {
        Ok(Some(svg)) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            svg,
        )
            .into_response(),
        Ok(None) => not_found(&format!("machine {id} has no probed ceilings to draw")),
        Err(e) => internal(e),
    })
}

async fn api_problems(State(s): State<Shared>) -> Answer {
    let e = entries(&s).await?;
    let list: Vec<_> = view::keys(&e)
        .into_iter()
        .map(|k| {
            let rows = view::rank(&e, &k);
            json!({
                "family": k.family, "dtype": k.dtype, "shape": k.shape, "slug": k.slug(),
                "results": rows.len(),
                "best_gflops": rows.first().map(|r| r.gflops),
            })
        })
        .collect();
    Ok(Json(list).into_response())
}

async fn api_rank(State(s): State<Shared>, Path(slug): Path<String>) -> Answer {
    let e = entries(&s).await?;
    Ok(match key_of(&e, &slug) {
        Some(k) => {
            let rows = view::rank(&e, &k);
            let by_fraction = view::rank_by_fraction(&rows);
            Json(json!({
                "family": k.family, "dtype": k.dtype, "shape": k.shape,
                "by_throughput": rows, "by_fraction": by_fraction,
            }))
            .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no results for problem {slug}")})),
        )
            .into_response(),
    })
}

async fn api_machines(State(s): State<Shared>) -> Answer {
    let e = entries(&s).await?;
    let list: Vec<_> = view::machines(&e)
        .into_iter()
        .map(|m| {
            let h = &m.db.machine.hardware;
            json!({
                "id": h.id, "label": m.db.machine.label, "cpu": h.cpu_model,
                "gpu": h.accelerator.as_ref().map(|g| &g.name),
                "results": m.db.results.len(), "submission": m.id, "received": m.received,
            })
        })
        .collect();
    Ok(Json(list).into_response())
}

async fn api_machine(State(s): State<Shared>, Path(id): Path<String>) -> Answer {
    let e = entries(&s).await?;
    Ok(match newest(&e, &id) {
        Some(m) => ([(header::CONTENT_TYPE, "application/json")], m.db.to_json()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no machine {id}")})),
        )
            .into_response(),
    })
}

async fn api_submissions(State(s): State<Shared>) -> Response {
    match s.store.list().await {
        Ok(l) => Json(l).into_response(),
        Err(e) => internal(e),
    }
}

/// Whether `ip` may submit now (and counts this submission).
fn allowed(s: &AppState, ip: IpAddr) -> bool {
    let now = Instant::now();
    let Ok(mut recent) = s.recent.lock() else {
        return true;
    };
    let q = recent.entry(ip).or_default();
    while q
        .front()
        .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
    {
        q.pop_front();
    }
    if q.len() >= s.config.per_minute {
        return false;
    }
    q.push_back(now);
    true
}

fn verdict(status: StatusCode, v: serde_json::Value) -> Response {
    (status, Json(v)).into_response()
}

async fn submit(
    State(s): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    if !allowed(&s, peer.ip()) {
        let mut r = verdict(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"status": "refused", "reasons": [format!(
                "more than {} submissions in a minute from {}: try again later",
                s.config.per_minute, peer.ip()
            )]}),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        return r;
    }
    let db = match validate::check(&body, &s.config.limits) {
        Ok(db) => db,
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return verdict(
                status,
                json!({"status": "refused", "reasons": refusal.reasons()}),
            );
        }
    };
    let id = crate::report::submission_id(&db);
    let received = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let url = format!("/machine/{}", db.machine.hardware.id);
    match s
        .store
        .insert(&id, &db, &peer.ip().to_string(), received)
        .await
    {
        Ok(Inserted::New) => verdict(
            StatusCode::CREATED,
            json!({"status": "accepted", "id": id, "reasons": [], "url": url,
                   "results": db.results.len()}),
        ),
        Ok(Inserted::Duplicate) => verdict(
            StatusCode::OK,
            json!({"status": "duplicate", "id": id, "url": url,
                   "reasons": ["this database was submitted before; nothing changed"]}),
        ),
        Err(e) => internal(e),
    }
}

/// Checks the administrators' token: None when it matches, else the refusal.
fn admin(s: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = s.config.admin_token.as_deref() else {
        return Some(verdict(
            StatusCode::FORBIDDEN,
            json!({"error": "administration is disabled: the server has no admin token"}),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        None
    } else {
        Some(verdict(
            StatusCode::UNAUTHORIZED,
            json!({"error": "a wrong or missing admin token"}),
        ))
    }
}

/// Compares without returning early on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn set_hidden(s: Shared, headers: HeaderMap, id: String, hidden: bool) -> Response {
    if let Some(refused) = admin(&s, &headers) {
        return refused;
    }
    match s.store.set_hidden(&id, hidden).await {
        Ok(true) => verdict(StatusCode::OK, json!({"id": id, "hidden": hidden})),
        Ok(false) => verdict(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no submission {id}")}),
        ),
        Err(e) => internal(e),
    }
}

async fn hide(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    set_hidden(s, headers, id, true).await
}

async fn show(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    set_hidden(s, headers, id, false).await
}

async fn remove(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(refused) = admin(&s, &headers) {
        return refused;
    }
    match s.store.delete(&id).await {
        Ok(true) => verdict(StatusCode::OK, json!({"id": id, "deleted": true})),
        Ok(false) => verdict(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no submission {id}")}),
        ),
        Err(e) => internal(e),
    }
}
