//! `phsync status` while `phsync run` runs, after it stopped, and after it was killed with
//! SIGKILL (the state it left must not claim to be live): text and JSON, against the lab DC.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use phsync_testkit::sync_fixture::SyncFixture;

fn phsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phsync"))
        .args(args)
        .output()
        .unwrap()
}

fn status_text(f: &SyncFixture) -> String {
    let o = phsync(&["status", "--config", f.config.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn status_json(f: &SyncFixture) -> serde_json::Value {
    let o = phsync(&["status", "--config", f.config.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The status line about the notifications.
fn notifications_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("notifications: "))
        .unwrap_or_else(|| panic!("no notifications line in:\n{text}"))
}

struct Run(Child);

impl Run {
    fn start(f: &SyncFixture) -> Run {
        Run(Command::new(env!("CARGO_BIN_EXE_phsync"))
            .args(["run", "--config", f.config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap())
    }

    /// Until `phsync status --json` says the notifications are connected (60 s at most).
    fn wait_connected(&mut self, f: &SyncFixture) -> serde_json::Value {
        let started = Instant::now();
        loop {
            assert!(
                self.0.try_wait().unwrap().is_none(),
                "phsync run exited early"
            );
            let s = status_json(f);
            if s["notifications"]["state"] == "connected" {
                return s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "not connected within 60 s: {s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn status_shows_a_live_run_a_stopped_one_and_one_killed_as_stale() {
    let f = SyncFixture::new("clistat", "");
    f.ou.add_user(&f.sam("csu"), "Status-Pass-1!");
    let config = f.config.to_str().unwrap().to_string();
    let o = phsync(&["status", "--config", &config]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("notifications: phsync run has not run yet"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Live.
    let mut run = Run::start(&f);
    let pid = run.0.id();
    let s = run.wait_connected(&f);
    let n = &s["notifications"];
    assert_eq!(n["live"], true, "{s}");
    assert_eq!(n["source"], "notifications", "{s}");
    assert_eq!(n["pid"], pid, "{s}");
    assert!(n["heartbeat_at"].is_string(), "{s}");
    assert!(n["stats"]["replicated"].is_u64(), "{s}");
    let text = status_text(&f);
    println!("live:\n{text}");
    let line = notifications_line(&text);
    assert!(
        line.starts_with("notifications: connected (live, via notifications) since "),
        "{line}"
    );
    assert!(
        text.contains(&format!("  run pid {pid}, last heartbeat ")),
        "{text}"
    );

    // Stopped with SIGTERM: stopped, not live.
    let term = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = Instant::now();
    while run.0.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "phsync run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = status_json(&f);
    assert_eq!(s["notifications"]["state"], "stopped", "{s}");
    assert_eq!(s["notifications"]["live"], false, "{s}");
    let text = status_text(&f);
    assert!(
        notifications_line(&text)
            .starts_with("notifications: stopped (not live, via notifications) since "),
        "{text}"
    );

    // Killed with SIGKILL while connected: the state it left is reported stale at once.
    let mut run = Run::start(&f);
    let pid = run.0.id();
    run.wait_connected(&f);
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    let s = status_json(&f);
    let n = &s["notifications"];
    assert_eq!(n["state"], "stale", "{s}");
    assert_eq!(n["live"], false, "{s}");
    let detail = n["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("(pid {pid}) is not running")) && detail.contains("connected"),
        "{detail}"
    );
    let text = status_text(&f);
    println!("after SIGKILL:\n{text}");
    let line = notifications_line(&text);
    assert!(
        line.starts_with("notifications: stale (not live, via notifications) since "),
        "{line}"
    );
    assert!(
        line.contains(&format!("(pid {pid}) is not running")),
        "{line}"
    );
}
