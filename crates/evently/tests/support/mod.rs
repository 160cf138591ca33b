//! Running the real `evently` binary as a child process.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `evently serve`, killed on drop.
pub struct Serve {
    pub child: Child,
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `evently` binary in `dir`, with cheap hashing set through the documented variables
/// (never the default) and quiet logs.
pub fn evently(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_evently"));
    command
        .current_dir(dir)
        .env_remove("EVENTLY_DATABASE_URL")
        .env_remove("EVENTLY_REDIS_URL")
        .env("EVENTLY_LOG", "warn")
        .env("EVENTLY_AUTH__PASSWORD__MEMORY_KIB", "256")
        .env("EVENTLY_AUTH__PASSWORD__ITERATIONS", "1");
    command
}

/// Starts `command` (an `evently serve …`) and waits for its "listening on" line.
pub fn start(mut command: Command) -> (Serve, Vec<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("evently starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a first line").expect("readable");
    let second = lines.next().expect("a second line").expect("readable");
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("an address")
        .to_owned();
    (Serve { child, base }, vec![first, second])
}

/// Runs `command` (an `evently` configured for its deployment) as
/// `admin create --email <email> --name <name>`, writing `password` to its standard input.
pub fn admin_create(
    mut command: Command,
    email: &str,
    name: &str,
    password: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .args(["admin", "create", "--email", email, "--name", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("evently starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("the password is written");
    child.wait_with_output().expect("evently exits")
}

/// A fresh directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("evently-proc-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
