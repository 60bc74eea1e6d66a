//! Writing into Maildirs: `tmp/` first, synced, then renamed into `new/`.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The folder holding every user's Maildir.
pub struct Spool {
    pub root: PathBuf,
    pub hostname: String,
}

impl Spool {
    /// Stores `message` for each of `users`; returns the names of the new
    /// files. On error nothing is left in `tmp/` and nothing was moved.
    pub fn deliver(
        &self,
        users: &[String],
        message: &[u8],
        random: impl Fn() -> String,
    ) -> std::io::Result<Vec<String>> {
        let mut staged: Vec<(PathBuf, PathBuf, String)> = Vec::new();
        let result = (|| {
            for user in users {
                let dir = self.root.join(user);
                for sub in ["tmp", "new", "cur"] {
                    fs::create_dir_all(dir.join(sub))?;
                }
                let name = self.unique_name(&random());
                let tmp = dir.join("tmp").join(&name);
                staged.push((tmp.clone(), dir.join("new").join(&name), name));
                write_synced(&tmp, message)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            for (tmp, _, _) in &staged {
                let _ = fs::remove_file(tmp);
            }
            return Err(e);
        }
        let mut names = Vec::with_capacity(staged.len());
        for (tmp, new, name) in staged {
            fs::rename(&tmp, &new)?;
            sync_dir(new.parent().expect("new/ has a parent"));
            names.push(name);
        }
        Ok(names)
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

fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = File::options().write(true).create_new(true).open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Makes the rename durable. WASI may not let a directory be opened as a
/// file; then the file's own sync is what we have.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
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
        let names = spool.deliver(&users, b"hello\r\n", || "ab".into()).unwrap();
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
        assert!(spool.deliver(&users, b"x", || "r".into()).is_err());
        let alice = root.path().join("alice");
        assert_eq!(fs::read_dir(alice.join("tmp")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(alice.join("new")).unwrap().count(), 0);
    }
}
