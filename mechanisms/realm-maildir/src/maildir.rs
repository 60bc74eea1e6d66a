//! Writing into Maildirs: `tmp/` first, synced, then renamed into `new/`.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The folder holding every user's Maildir.
pub struct Spool {
    pub root: PathBuf,
    pub hostname: String,
}

/// Files in `tmp/` older than this were left by a delivery that was
/// abandoned (the host's longest deliver deadline is 5 minutes), and are
/// removed by the next delivery to that Maildir.
pub const STALE_TMP: Duration = Duration::from_secs(15 * 60);

/// Bytes written between two looks at the clock.
const CHUNK: usize = 256 << 10;

/// Why a delivery did not store the message.
#[derive(Debug)]
pub enum DeliverError {
    /// Nothing was committed: the client may send it again.
    NotStored(std::io::Error),
    /// Some recipients' copies were committed and could not be taken back;
    /// `stored` names them.
    Partial {
        error: std::io::Error,
        stored: Vec<String>,
    },
}

impl std::fmt::Display for DeliverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliverError::NotStored(e) => write!(f, "{e}"),
            DeliverError::Partial { error, stored } => {
                write!(f, "{error}; already stored for {}", stored.join(", "))
            }
        }
    }
}

impl Spool {
    /// Stores `message` for each of `users`; returns the names of the new
    /// files. The commit is the renames into `new/`, made only once every
    /// copy is written and synced in `tmp/`, and only if `deadline` (when
    /// given) has not passed: a delivery running late gives up before it
    /// commits, so the host's deadline never cuts a commit half-way.
    /// On [`DeliverError::NotStored`] nothing is left in `tmp/` or `new/`.
    pub fn deliver(
        &self,
        users: &[String],
        message: &[u8],
        random: impl Fn() -> String,
        deadline: Option<Instant>,
    ) -> Result<Vec<String>, DeliverError> {
        let late = || {
            deadline.is_some_and(|d| Instant::now() >= d).then(|| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the delivery ran late and gave up before its commit",
                )
            })
        };
        let mut staged: Vec<(PathBuf, PathBuf, String)> = Vec::new();
        let result = (|| {
            for user in users {
                let dir = self.root.join(user);
                for sub in ["tmp", "new", "cur"] {
                    fs::create_dir_all(dir.join(sub))?;
                }
                remove_stale(&dir.join("tmp"));
                let name = self.unique_name(&random());
                let tmp = dir.join("tmp").join(&name);
                staged.push((tmp.clone(), dir.join("new").join(&name), name));
                write_synced(&tmp, message, &late)?;
            }
            // Make the tmp/ entries durable before they are renamed.
            for (tmp, _, _) in &staged {
                sync_dir(tmp.parent().expect("tmp/ has a parent"))?;
            }
            match late() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })();
        if let Err(e) = result {
            for (tmp, _, _) in &staged {
                let _ = fs::remove_file(tmp);
            }
            return Err(DeliverError::NotStored(e));
        }
        let mut committed: Vec<&(PathBuf, PathBuf, String)> = Vec::with_capacity(staged.len());
        for entry in &staged {
            if let Err(e) = fs::rename(&entry.0, &entry.1) {
                return Err(self.undo(&staged, &committed, e));
            }
            committed.push(entry);
        }
        for (_, new, _) in &staged {
            if let Err(e) = sync_dir(new.parent().expect("new/ has a parent")) {
                // The renames happened; only their durability is in doubt.
                let stored = staged.iter().map(|s| s.2.clone()).collect();
                return Err(DeliverError::Partial { error: e, stored });
            }
        }
        Ok(staged.into_iter().map(|(_, _, name)| name).collect())
    }

    /// After a failed rename: takes the committed copies back out of
    /// `new/` so that a retry does not duplicate them, and removes the
    /// rest of `tmp/`.
    fn undo(
        &self,
        staged: &[(PathBuf, PathBuf, String)],
        committed: &[&(PathBuf, PathBuf, String)],
        error: std::io::Error,
    ) -> DeliverError {
        let mut stored = Vec::new();
        for (tmp, new, name) in committed {
            if fs::rename(new, tmp).is_err() {
                stored.push(name.clone());
            }
        }
        for (tmp, _, _) in staged {
            let _ = fs::remove_file(tmp);
        }
        if stored.is_empty() {
            DeliverError::NotStored(error)
        } else {
            DeliverError::Partial { error, stored }
        }
    }

    /// `SECONDS.MMICROSQCOUNTERRRANDOM.HOST`, after the Maildir spec's
    /// recommendations.
    fn unique_name(&self, random: &str) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let host: String = self
            .hostname
            .chars()
            .map(|c| match c {
                '/' => "\\057".to_owned(),
                ':' => "\\072".to_owned(),
                c => c.to_string(),
            })
            .collect();
        format!(
            "{}.M{}Q{}R{random}.{host}",
            now.as_secs(),
            now.subsec_micros(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Writes `data` in chunks, looking at the clock between them, then syncs.
fn write_synced(
    path: &Path,
    data: &[u8],
    late: &dyn Fn() -> Option<std::io::Error>,
) -> std::io::Result<()> {
    let mut file = File::options().write(true).create_new(true).open(path)?;
    for chunk in data.chunks(CHUNK) {
        if let Some(e) = late() {
            return Err(e);
        }
        file.write_all(chunk)?;
    }
    file.sync_all()
}

/// Makes the entries of `dir` durable (fsync of the folder). A folder
/// that cannot be opened for syncing (some WASI hosts refuse) leaves the
/// files' own syncs as what we have.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match File::open(dir) {
        Ok(handle) => handle.sync_all().or_else(|e| match e.kind() {
            std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied => Ok(()),
            _ => Err(e),
        }),
        Err(_) => Ok(()),
    }
}

/// Removes files of `tmp/` that an abandoned delivery left behind.
fn remove_stale(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_TMP));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_to_every_user_through_tmp() {
        let root = tempfile::tempdir().unwrap();
        let spool = Spool {
            root: root.path().to_owned(),
            hostname: "mx/1:2".into(),
        };
        let users = vec!["alice".to_owned(), "bob".to_owned()];
        let names = spool
            .deliver(&users, b"hello\r\n", || "ab".into(), None)
            .unwrap();
        assert_eq!(names.len(), 2);
        assert_ne!(names[0], names[1]);
        assert!(names[0].ends_with("Rab.mx\\0571\\0722"), "{}", names[0]);
        for (user, name) in users.iter().zip(&names) {
            let dir = root.path().join(user);
            assert_eq!(fs::read(dir.join("new").join(name)).unwrap(), b"hello\r\n");
            assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
            assert!(dir.join("cur").is_dir());
        }
    }

    #[test]
    fn a_failure_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        // "bob" is a file, so his Maildir cannot be made.
        fs::write(root.path().join("bob"), b"").unwrap();
        let spool = Spool {
            root: root.path().to_owned(),
            hostname: "h".into(),
        };
        let users = vec!["alice".to_owned(), "bob".to_owned()];
        assert!(matches!(
            spool.deliver(&users, b"x", || "r".into(), None),
            Err(DeliverError::NotStored(_))
        ));
        let alice = root.path().join("alice");
        assert_eq!(fs::read_dir(alice.join("tmp")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(alice.join("new")).unwrap().count(), 0);
    }

    #[test]
    fn a_late_delivery_gives_up_before_its_commit() {
        let root = tempfile::tempdir().unwrap();
        let spool = Spool {
            root: root.path().to_owned(),
            hostname: "h".into(),
        };
        let users = vec!["alice".to_owned(), "bob".to_owned()];
        let past = Instant::now();
        let got = spool.deliver(&users, &vec![b'x'; 1 << 20], || "r".into(), Some(past));
        assert!(matches!(got, Err(DeliverError::NotStored(_))), "{got:?}");
        let count = |p: PathBuf| fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
        for user in &users {
            let dir = root.path().join(user);
            assert_eq!(count(dir.join("tmp")), 0);
            assert_eq!(count(dir.join("new")), 0);
        }
    }

    #[test]
    fn a_failed_rename_takes_back_the_copies_already_moved() {
        let root = tempfile::tempdir().unwrap();
        let spool = Spool {
            root: root.path().to_owned(),
            hostname: "h".into(),
        };
        // bob's new/ is a file: his rename fails after alice's succeeded.
        fs::create_dir_all(root.path().join("bob/tmp")).unwrap();
        fs::create_dir_all(root.path().join("bob/cur")).unwrap();
        fs::write(root.path().join("bob/new"), b"").unwrap();
        let users = vec!["alice".to_owned(), "bob".to_owned()];
        let got = spool.deliver(&users, b"x", || "r".into(), None);
        assert!(matches!(got, Err(DeliverError::NotStored(_))), "{got:?}");
        let alice = root.path().join("alice");
        assert_eq!(fs::read_dir(alice.join("new")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(alice.join("tmp")).unwrap().count(), 0);
        assert_eq!(
            fs::read_dir(root.path().join("bob/tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn stale_tmp_files_are_removed_by_the_next_delivery() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("alice/tmp");
        fs::create_dir_all(&tmp).unwrap();
        let old = tmp.join("1.M1Q1Rr.h");
        fs::write(&old, b"abandoned").unwrap();
        let long_ago = SystemTime::now() - STALE_TMP - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let fresh = tmp.join("2.M1Q1Rr.h");
        fs::write(&fresh, b"in flight").unwrap();
        let spool = Spool {
            root: root.path().to_owned(),
            hostname: "h".into(),
        };
        spool
            .deliver(&["alice".to_owned()], b"x", || "s".into(), None)
            .unwrap();
        assert!(!old.exists());
        assert!(fresh.exists(), "a delivery in flight keeps its file");
    }
}
