//! The real `komainu` binary, started on ephemeral loopback ports.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The claim secret the harness starts gateways with.
pub const CLAIM_SECRET: &str = "e2e-claim-secret";
/// The admin key the harness starts gateways with (`clientId:clientSecret`).
pub const ADMIN_KEY: &str = "ops:e2e-admin-secret";
/// The deployment key the harness gives the Worker (and native gateways
/// that must share documents with it).
pub const SECRET_KEY: &str = "e2e-deployment-key-0123456789abcdef";

/// A running `komainu serve`; terminated when dropped.
pub struct Komainu {
    child: Child,
    /// The proxy listener.
    pub proxy: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// Everything the process printed to stdout so far.
    pub stdout: Arc<Mutex<String>>,
    dir: PathBuf,
    args: Vec<String>,
    owns_dir: bool,
}

/// A fresh, empty directory for one test, removed by [`Komainu`] on drop.
pub fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "komainu-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// The `komainu` binary under test.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("KOMAINU_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test-binary> → target/<profile>/komainu
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join(format!("komainu{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build -p komainu) or set KOMAINU_BIN",
        bin.display()
    );
    bin
}

impl Komainu {
    /// Starts a gateway whose file store holds `document` (JSON text),
    /// with the Worker's deployment key (so documents move between them).
    pub fn start_with_shared_key(document: &str) -> Self {
        let dir = temp_dir();
        std::fs::write(dir.join("data.json"), document).expect("write the store file");
        Self::start_in(
            dir,
            &[
                "--claim-secret",
                CLAIM_SECRET,
                "--admin-key",
                ADMIN_KEY,
                "--secret-key",
                SECRET_KEY,
            ],
        )
    }

    /// Starts a gateway whose file store holds `document` (JSON text); its
    /// deployment key is the key file made beside it.
    pub fn start(document: &str) -> Self {
        let dir = temp_dir();
        std::fs::write(dir.join("data.json"), document).expect("write the store file");
        Self::start_in(
            dir,
            &["--claim-secret", CLAIM_SECRET, "--admin-key", ADMIN_KEY],
        )
    }

    /// Starts a gateway on the file store `dir/data.json` with extra arguments.
    pub fn start_in(dir: PathBuf, extra: &[&str]) -> Self {
        let store = format!("file:{}", dir.join("data.json").display());
        Self::start_on(dir, &store, extra)
    }

    /// Starts a gateway on any store (`redis://…`), with the harness's
    /// claim secret and admin key and extra arguments.
    pub fn start_shared(store: &str, extra: &[&str]) -> Self {
        let mut args = vec!["--claim-secret", CLAIM_SECRET, "--admin-key", ADMIN_KEY];
        args.extend_from_slice(extra);
        Self::start_on(temp_dir(), store, &args)
    }

    fn start_on(dir: PathBuf, store: &str, extra: &[&str]) -> Self {
        let mut args: Vec<String> = [
            "serve",
            "--proxy-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--store",
            store,
            "--shutdown-grace",
            "10",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(dir, args)
    }

    fn spawn(dir: PathBuf, args: Vec<String>) -> Self {
        let mut child = Command::new(binary())
            .args(&args)
            .env_remove("KOMAINU_PROXY_ADDR")
            .env_remove("PORT")
            .env("KOMAINU_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start komainu");
        let stdout = child.stdout.take().expect("piped stdout");
        let printed = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<(String, SocketAddr)>();
        let sink = printed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                for what in ["proxy", "admin"] {
                    let marker = format!("{what} listening on http://");
                    if let Some(addr) = line
                        .split(&marker)
                        .nth(1)
                        .and_then(|a| a.trim().parse().ok())
                    {
                        let _ = tx.send((what.to_owned(), addr));
                    }
                }
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (mut proxy, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while proxy.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((what, addr)) if what == "proxy" => proxy = Some(addr),
                Ok((_, addr)) => admin = Some(addr),
                Err(_) => {
                    let status = child.try_wait().ok().flatten();
                    let _ = child.kill();
                    panic!("komainu did not start listening (exit: {status:?}); args: {args:?}");
                }
            }
        }
        Self {
            child,
            proxy: proxy.expect("proxy address"),
            admin: admin.expect("admin address"),
            stdout: printed,
            dir,
            args,
            owns_dir: true,
        }
    }

    /// A URL on the proxy listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// A raw TCP connection to the proxy listener.
    pub async fn connect(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(self.proxy.to_string())
            .await
            .expect("connect to the proxy listener")
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The gateway's working directory (temporary, removed with it).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The file store's path.
    pub fn data_path(&self) -> PathBuf {
        self.dir.join("data.json")
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("komainu did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops this process and starts a new one on the same store and arguments.
    pub fn restart(mut self) -> Self {
        self.terminate();
        self.owns_dir = false;
        Self::spawn(self.dir.clone(), self.args.clone())
    }

    /// The admin base URL (what `--admin` takes).
    pub fn admin_base(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// Waits (up to 10 s) until stdout contains `needle`; returns all of stdout.
    pub fn wait_for_output(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let printed = self
                .stdout
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if printed.contains(needle) || Instant::now() > deadline {
                return printed;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Komainu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `komainu` with `args` to completion (for start-up failures):
/// exit status, stdout and stderr.
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start komainu");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("komainu {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    (status, out, err)
}
