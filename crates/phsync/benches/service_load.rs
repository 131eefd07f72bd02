//! Load test of `phsync cloud serve`: concurrent sign-ins over HTTPS (keep-alive clients on
//! loopback) against a PostgreSQL store, with throughput and latency percentiles, a
//! reference measured in the same run (the same sign-ins through the tenant rules directly
//! on the same store, no HTTP), and a check that no row was lost or corrupted.
//!
//!   cargo bench --bench service_load      (needs PHSYNC_TEST_POSTGRES: scripts/pg-lab/pg.sh)
//!   PHSYNC_BENCH_USERS, PHSYNC_BENCH_REQUESTS, PHSYNC_BENCH_CLIENTS override the sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use phsync_tenant::{
    self as cloud, CloudTenant, SignInStatus, SyncedCredential, SyncedUserSpec, Timestamp,
    TokenRole,
};
use phsync_testkit::service::ServiceLab;
use phsync_testkit::tenant::digest_of;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    successes: usize,
}

/// `requests` sign-ins from `clients` threads; 1 in 10 uses a wrong password.
fn load(tenants: Vec<Arc<dyn CloudTenant>>, users: usize, requests: usize) -> Run {
    let clients = tenants.len();
    let start = Instant::now();
    let threads: Vec<_> = tenants
        .into_iter()
        .enumerate()
        .map(|(c, tenant)| {
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut successes = 0;
                for j in (c..requests).step_by(clients) {
                    let u = (j * 7) % users;
                    let wrong = j % 10 == 9;
                    let pw = if wrong {
                        "Wrong-Bench-Pass1".to_string()
                    } else {
                        format!("Bench-Pass-{u}")
                    };
                    let pw: Vec<u16> = pw.encode_utf16().collect();
                    let t = Instant::now();
                    let r = tenant
                        .sign_in(&format!("load{u}@phs.test"), &pw)
                        .unwrap_or_else(|e| panic!("sign-in failed: {e}"));
                    latencies.push(t.elapsed());
                    let expected = if wrong {
                        SignInStatus::InvalidCredentials
                    } else {
                        SignInStatus::Success
                    };
                    assert_eq!(r.result, expected, "load{u}: wrong verdict");
                    successes += usize::from(!wrong);
                }
                (latencies, successes)
            })
        })
        .collect();
    let mut run = Run {
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        successes: 0,
    };
    for t in threads {
        let (l, s) = t.join().expect("client thread");
        run.latencies.extend(l);
        run.successes += s;
    }
    run.elapsed = start.elapsed();
    run.latencies.sort();
    run
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn credentials_rows(url: &str) -> Vec<String> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query("SELECT c::text FROM credentials c ORDER BY user_id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo test --all-targets` runs this without `--bench`: a small smoke run then.
    let bench = std::env::args().any(|a| a == "--bench");
    let users = env_or("PHSYNC_BENCH_USERS", if bench { 200 } else { 20 });
    let requests = env_or("PHSYNC_BENCH_REQUESTS", if bench { 1200 } else { 60 });
    let clients = env_or("PHSYNC_BENCH_CLIENTS", 16);
    // All clients share one address: lift the per-address throttle, keep the per-user one
    // (each user gets fewer attempts than its 20 a minute).
    let lab = ServiceLab::with_settings("bench", "sign_in_per_address_per_minute = 0");
    // Warnings only: one info line per request would be thousands of lines.
    let service = lab.serve_with(&["--log-level", "warn"]);
    let agent_token = lab.token(
        TokenRole::Agent,
        "bench-agent",
        Some("phs.test"),
        "agent.token",
    );
    let agent = lab.client(&service, &agent_token);
    let specs: Vec<SyncedUserSpec> = (0..users)
        .map(|u| SyncedUserSpec {
            source_anchor: format!("bG9hZA{u:05}"),
            user_principal_name: format!("load{u}@phs.test"),
            display_name: None,
            enabled: true,
        })
        .collect();
    agent
        .provision_synced_users(&specs)
        .unwrap()
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    let creds: Vec<SyncedCredential> = (0..users)
        .map(|u| SyncedCredential {
            source_anchor: specs[u].source_anchor.clone(),
            digest: digest_of(&format!("Bench-Pass-{u}")),
            changed_at: Timestamp::now(),
            force_change_at_next_sign_in: false,
            leak_check: None,
        })
        .collect();
    agent
        .apply_synced_credentials(&creds)
        .unwrap()
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    let admin = lab.admin(&service);
    let before = admin.status().unwrap().counts;
    let credentials_before = credentials_rows(&lab.db.url);

    let http: Vec<Arc<dyn CloudTenant>> = (0..clients)
        .map(|_| Arc::from(lab.admin(&service)))
        .collect();
    let over_https = load(http, users, requests);
    let reference_requests = requests / 3;
    let direct: Vec<Arc<dyn CloudTenant>> = (0..clients)
        .map(|_| Arc::from(cloud::open(&lab.db.url, "bench").unwrap()))
        .collect();
    let in_process = load(direct, users, reference_requests);

    // Nothing lost, nothing corrupted: one audit row per attempt, one session per success,
    // the credentials untouched, every count where it should be.
    let after = admin.status().unwrap().counts;
    let attempts = (requests + reference_requests) as u64;
    let successes = (over_https.successes + in_process.successes) as u64;
    assert_eq!(
        after.audit_entries - before.audit_entries,
        attempts,
        "audit rows lost or extra"
    );
    assert_eq!(
        after.sessions - before.sessions,
        successes,
        "sessions lost or extra"
    );
    assert_eq!(
        (after.users, after.credentials),
        (before.users, before.credentials)
    );
    assert_eq!(
        credentials_rows(&lab.db.url),
        credentials_before,
        "credentials changed under load"
    );

    let rate = |r: &Run, n: usize| n as f64 / r.elapsed.as_secs_f64();
    let (https_rate, ref_rate) = (
        rate(&over_https, requests),
        rate(&in_process, reference_requests),
    );
    println!(
        "sign-ins over HTTPS into PostgreSQL: {requests} from {clients} clients in {:.2} s = {https_rate:.0}/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        over_https.elapsed.as_secs_f64(),
        pct(&over_https.latencies, 0.50),
        pct(&over_https.latencies, 0.99),
        pct(&over_https.latencies, 1.0),
    );
    println!(
        "reference, same run: the same sign-ins through the tenant rules on the same store, no HTTP: {reference_requests} in {:.2} s = {ref_rate:.0}/s; p50 {:.1} ms, p99 {:.1} ms",
        in_process.elapsed.as_secs_f64(),
        pct(&in_process.latencies, 0.50),
        pct(&in_process.latencies, 0.99),
    );
    println!(
        "ratio: the service runs at {:.2}x the direct rate",
        https_rate / ref_rate
    );
    println!(
        "integrity: {attempts} attempts = {attempts} new audit rows, {successes} successes = {successes} new sessions, {} credentials unchanged",
        credentials_before.len()
    );
    drop(service);
}
