//! Private database servers for the tests that restart one: a PostgreSQL cluster and a MariaDB
//! server of their own (the shared servers `scripts/test.sh` starts serve every other test, so
//! they must never go down). Built from the same distribution packages, on free loopback ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::env;

/// True when the tests run as root (servers then run as another user, as the scripts do).
fn root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A free TCP port on 127.0.0.1 (the kernel picks it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cmd` (as user postgres when root) and asserts success.
fn run_as_postgres(args: &[&str]) {
    let mut cmd = if root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    let out = cmd.output().expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `ready` until it holds (a server coming up has no event to wait on).
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A PostgreSQL cluster with logical decoding, trusting local connections, of one test.
pub struct PrivatePg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePg {
    /// initdb, configure, start.
    pub fn start() -> PrivatePg {
        let bin = PathBuf::from(env("TRIBUTARY_TEST_PG_BIN"));
        let dir = tempfile::Builder::new()
            .prefix("tributary-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        if root() {
            let ok = Command::new("chown")
                .args(["postgres:", dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let data = dir.path().join("data");
        let tool = |name: &str| bin.join(name).display().to_string();
        run_as_postgres(&[
            &tool("initdb"),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]);
        let port = free_port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             wal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10\n\
             fsync = off\nsynchronous_commit = off\ntimezone = 'UTC'\n",
            dir.path().display()
        );
        append(&data.join("postgresql.conf"), &conf);
        append(
            &data.join("pg_hba.conf"),
            "host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n",
        );
        let pg = PrivatePg { dir, bin, port };
        pg.ctl(&["start"]);
        pg
    }

    /// `pg_ctl` with the cluster's data folder and log.
    fn ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let mut all = vec![
            self.bin.join("pg_ctl").display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-l".into(),
            log.display().to_string(),
            "-w".into(),
            "-t".into(),
            "60".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run_as_postgres(&all);
    }

    /// A fast restart: every session is terminated, the server comes back at the same address.
    pub fn restart(&self) {
        self.ctl(&["-m", "fast", "restart"]);
    }

    /// Superuser URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.ctl(&["-m", "immediate", "stop"]);
    }
}

/// Appends `text` to the file at `path`.
fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A MariaDB server with a ROW binlog of one test.
pub struct PrivateMaria {
    dir: tempfile::TempDir,
    port: u16,
    server: Mutex<Option<Child>>,
}

impl PrivateMaria {
    /// Installs a data folder and starts the server.
    pub fn start() -> PrivateMaria {
        let dir = tempfile::Builder::new()
            .prefix("tributary-my-")
            .tempdir_in("/tmp")
            .unwrap();
        for sub in ["data", "binlog", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let mut install = Command::new("mariadb-install-db");
        install.args([
            "--no-defaults",
            &format!("--datadir={}", dir.path().join("data").display()),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]);
        if root() {
            install.arg("--user=root");
        }
        let out = install.output().expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let my = PrivateMaria {
            dir,
            port: free_port(),
            server: Mutex::new(None),
        };
        my.launch();
        my
    }

    /// Starts the server process and waits until it answers.
    fn launch(&self) {
        let d = self.dir.path();
        let mut cmd = Command::new("mariadbd");
        cmd.args([
            "--no-defaults".to_string(),
            format!("--datadir={}", d.join("data").display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", d.join("mysqld.sock").display()),
            format!("--tmpdir={}", d.join("tmp").display()),
            format!("--log-bin={}", d.join("binlog/mysql-bin").display()),
            "--server-id=1".into(),
            "--binlog-format=ROW".into(),
            "--binlog-row-image=FULL".into(),
            "--binlog-row-metadata=FULL".into(),
            "--character-set-server=utf8mb4".into(),
            "--default-time-zone=+00:00".into(),
        ]);
        if root() {
            cmd.arg("--user=root");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("server.log"))
            .unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        *self.server.lock().unwrap() = Some(child);
        let port = self.port.to_string();
        wait_until("MariaDB", || {
            Command::new("mariadb-admin")
                .args([
                    "--no-defaults",
                    "--protocol=TCP",
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &port,
                ])
                .args(["-u", "root", "ping"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }

    /// Stops the server (SIGTERM, a clean shutdown that ends every session) and starts it again.
    pub fn restart(&self) {
        self.stop();
        self.launch();
    }

    fn stop(&self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Root URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivateMaria {
    fn drop(&mut self) {
        self.stop();
    }
}
