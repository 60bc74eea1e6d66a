//! Private mail servers as a relay's next hop: a Postfix (SMTP, delivering
//! into Maildirs) and a Dovecot LMTP, each from its own temporary folder
//! and on a loopback port of its own. tests/setup.sh installs both; a test
//! that needs one and does not find it fails with that advice.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now (the OS's choice).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn require(path: &str, what: &str) {
    assert!(
        Path::new(path).exists(),
        "{what} ({path}) is not installed; run `sh tests/setup.sh` (as root) first"
    );
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not listen on 127.0.0.1:{port}; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// The messages in `maildir/new` and `maildir/cur`, oldest first.
fn maildir_messages(maildir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(maildir.join(sub)).ok())
        .flatten()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
        .collect()
}

/// A running private Postfix. Users alice, bob, defer and late4 at
/// `example.test` get Maildirs; RCPT TO defer@ is answered 450, and a
/// message to late4@ is refused with 451 after its final dot (and to
/// late5@ with 554); any other recipient is unknown (550).
pub struct Postfix {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Postfix {
    /// `xclient_hosts`: the value of `smtpd_authorized_xclient_hosts`.
    pub fn start(xclient_hosts: &str) -> Postfix {
        Postfix::start_with(xclient_hosts, "")
    }

    /// [`Postfix::start`] with more `main.cf` lines.
    pub fn start_with(xclient_hosts: &str, extra_main_cf: &str) -> Postfix {
        require("/usr/sbin/postfix", "Postfix");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        // Postfix's and the delivery agent's users must get through it.
        Command::new("chmod").args(["755", &d]).status().unwrap();
        let port = free_port();
        for sub in ["queue", "data", "mail"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        // The virtual delivery agent writes as nobody.
        Command::new("chmod")
            .args(["777", &format!("{d}/mail")])
            .status()
            .unwrap();
        let main = format!(
            r#"compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
myhostname = mta.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = example.test
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = inline:{{alice@example.test=alice/, bob@example.test=bob/, defer@example.test=defer/, late4@example.test=late4/, late5@example.test=late5/}}
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
smtpd_recipient_restrictions = check_recipient_access inline:{{ {{defer@example.test=450 4.2.0 try later}} }}, permit_mynetworks, reject
smtpd_end_of_data_restrictions = check_recipient_access inline:{{ {{late4@example.test=451 4.3.0 try again after data}}, {{late5@example.test=554 5.7.1 refused after data}} }}
smtpd_authorized_xclient_hosts = {xclient_hosts}
{extra_main_cf}
"#
        );
        std::fs::write(dir.path().join("main.cf"), main).unwrap();
        let master = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n{}",
            POSTFIX_SERVICES
        );
        std::fs::write(dir.path().join("master.cf"), master).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("postfix")
                .args(["-c", &d])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "postfix {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["set-permissions"]);
        run(&["start"]);
        let postfix = Postfix { dir, port };
        wait_for_port(port, "Postfix", &postfix.dir.path().join("maillog"));
        postfix
    }

    /// The messages delivered to `user` so far.
    pub fn messages(&self, user: &str) -> Vec<String> {
        maildir_messages(&self.dir.path().join("mail").join(user))
    }

    /// Waits until `user` has `count` messages (local delivery follows the
    /// 250 by a moment), then a little longer to see that no more come.
    pub fn wait_messages(&self, user: &str, count: usize) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(10);
        while self.messages(user).len() < count && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        self.messages(user)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Kills this instance's master and its children (by their process
    /// ids) at once, open sessions and all: `postfix stop` would let an
    /// smtpd finish its session.
    pub fn kill(&self) {
        let pid_file = self.dir.path().join("queue/pid/master.pid");
        let master: u32 = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
            .trim()
            .parse()
            .unwrap();
        let mut pids = vec![master];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid …
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(master) {
                pids.push(pid);
            }
        }
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Postfix {
    /// `postfix stop`, and if that hangs (it waits on Postfix's logging),
    /// kills the instance after 15 s rather than hanging the suite.
    fn drop(&mut self) {
        let stop = Command::new("postfix")
            .args(["-c", &self.dir.path().display().to_string(), "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(mut stop) = stop else { return };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if !matches!(stop.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = stop.kill();
        let _ = stop.wait();
        if self.dir.path().join("queue/pid/master.pid").exists() {
            self.kill();
        }
    }
}

const POSTFIX_SERVICES: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// A running private Dovecot LMTP server. Users alice and bob (any
/// domain) get Maildirs; bob's quota is 1 byte, so a message to him is
/// refused after its final dot; anyone else is unknown at RCPT.
pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub port: u16,
    config: PathBuf,
}

impl Dovecot {
    pub fn start() -> Dovecot {
        require("/usr/sbin/dovecot", "Dovecot");
        require(
            "/usr/lib/dovecot/lmtp",
            "Dovecot's LMTP server (dovecot-lmtpd)",
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        Command::new("chmod").args(["755", &d]).status().unwrap();
        let port = free_port();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        Command::new("chmod")
            .args(["777", &format!("{d}/mail")])
            .status()
            .unwrap();
        std::fs::write(
            dir.path().join("users"),
            "alice:::::::\nbob::::::: userdb_quota_rule=*:bytes=1\n",
        )
        .unwrap();
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let config = dir.path().join("dovecot.conf");
        std::fs::write(
            &config,
            format!(
                r#"base_dir = {d}/run
state_dir = {d}/run
log_path = {d}/dovecot.log
instance_name = {name}
protocols = lmtp
listen = 127.0.0.1
ssl = no
mail_location = maildir:{d}/mail/%n
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
mail_plugins = quota
plugin {{
  quota = maildir:User quota
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {d}/users
}}
passdb {{
  driver = passwd-file
  args = username_format=%n {d}/users
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"#
            ),
        )
        .unwrap();
        // Dovecot's master daemonizes and keeps the stdio it was given, so
        // its errors go to a file: waiting on a pipe would never end.
        let errors = dir.path().join("dovecot.stderr");
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errors).unwrap())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "dovecot -c {}: {}",
            config.display(),
            std::fs::read_to_string(&errors).unwrap_or_default()
        );
        let dovecot = Dovecot { dir, port, config };
        wait_for_port(
            port,
            "Dovecot LMTP",
            &dovecot.dir.path().join("dovecot.log"),
        );
        dovecot
    }

    pub fn messages(&self, user: &str) -> Vec<String> {
        maildir_messages(&self.dir.path().join("mail").join(user))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("dovecot")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .output();
    }
}
