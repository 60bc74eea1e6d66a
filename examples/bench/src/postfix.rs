//! A private Postfix for the loads that go through one (`mta`, `relay`):
//! its own queue and configuration folders under the run's temporary
//! folder, its smtpd ports on loopback, stopped when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::process::Command;

/// The services every private Postfix here runs besides its smtpd ports.
const SERVICES: [&str; 11] = [
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "discard unix - - n - - discard",
    "proxymap unix - - n - - proxymap",
    "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache",
    "postlog unix-dgram n - n - 1 postlogd",
];

pub struct Postfix {
    config: PathBuf,
}

impl Postfix {
    /// Starts Postfix under `dir/postfix` with the common `main.cf` plus
    /// `main_cf` and one smtpd per `(address, options)` (`-o` options for
    /// `master.cf`), and waits until every address accepts connections.
    pub async fn start(
        dir: &Path,
        main_cf: &str,
        smtpds: &[(SocketAddr, String)],
    ) -> anyhow::Result<Postfix> {
        let root = dir.join("postfix");
        let config = root.join("etc");
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        let r = root.display();
        std::fs::write(
            config.join("main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {r}/queue\n\
                 data_directory = {r}/data\nmeta_directory = /etc/postfix\n\
                 maillog_file = {r}/maillog\nmaillog_file_prefixes = {r}\n\
                 myhostname = mta.test\nmydestination =\ninet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\nsmtputf8_enable = no\n{main_cf}"
            ),
        )?;
        let mut master: Vec<String> = smtpds
            .iter()
            .map(|(addr, options)| format!("{addr} inet n - n - - smtpd {options}"))
            .collect();
        master.extend(SERVICES.iter().map(|s| s.to_string()));
        std::fs::write(config.join("master.cf"), master.join("\n") + "\n")?;
        let postfix = Postfix { config };
        postfix.run("set-permissions").await?;
        postfix.run("start").await?;
        for (addr, _) in smtpds {
            let start = Instant::now();
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                if start.elapsed() > Duration::from_secs(30) {
                    bail!("Postfix is not listening on {addr} after 30 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(postfix)
    }

    async fn run(&self, what: &str) -> anyhow::Result<()> {
        let output = Command::new("postfix")
            .arg("-c")
            .arg(&self.config)
            .arg(what)
            .output()
            .await?;
        if !output.status.success() {
            bail!(
                "postfix {what}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = std::process::Command::new("postfix")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .output();
    }
}

/// A fresh folder for one run's servers, open to the users Postfix and
/// the auth servers run as; the caller removes it.
pub fn scratch_dir(what: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("portcullis-bench-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// The installed Postfix's version, for the report.
pub async fn version() -> String {
    let output = Command::new("postconf")
        .args(["-d", "-h", "mail_version"])
        .output()
        .await;
    match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => "(version unknown)".into(),
    }
}
