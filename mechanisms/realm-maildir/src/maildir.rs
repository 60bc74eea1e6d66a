//! Writing one message into the Maildirs of its recipients
//! (<https://cr.yp.to/proto/maildir.html>), with plain `std::fs`, so it runs
//! (and is tested) natively as well as inside the sandbox.
//!
//! Delivery is in two phases so that a failure leaves nothing behind and a
//! retry delivers no duplicates:
//!
//! 1. for every user, `tmp/<unique>` is created, written and `sync_all`ed;
//!    if any of this fails, every file written so far is removed;
//! 2. every file is renamed to `new/<unique>`, then each `new/` folder is
//!    synced. Only a failure here, after some renames, can leave the
//!    message in some mailboxes while the client is told to retry.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::address::User;

/// Where mailboxes live and how they are made.
#[derive(Clone, Debug)]
pub struct Spool {
    /// The spool folder; each user's Maildir is a folder in it.
    pub root: PathBuf,
    /// Whether a user's folder is created on first delivery.
    pub create: bool,
}

/// A step of delivery that failed, for the operator's log.
#[derive(Debug)]
pub struct DeliveryError {
    pub user: String,
    pub step: &'static str,
    pub source: io::Error,
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "maildir of {}: cannot {}: {}",
            self.user, self.step, self.source
        )
    }
}

impl Spool {
    /// The user's Maildir.
    pub fn maildir(&self, user: &User) -> PathBuf {
        self.root.join(user.as_str())
    }

    /// Whether mail for `user` can be delivered: always when folders are
    /// created on demand, otherwise only when the user's folder exists.
    pub fn accepts(&self, user: &User) -> io::Result<bool> {
        if self.create {
            return Ok(true);
        }
        match fs::metadata(self.maildir(user)) {
            Ok(meta) => Ok(meta.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delivers `message` to every user, each under a fresh name from
    /// `unique`. Returns the names used, in the order of `users`.
    pub fn deliver(
        &self,
        users: &[User],
        message: &[u8],
        unique: &mut dyn FnMut() -> io::Result<String>,
    ) -> Result<Vec<String>, DeliveryError> {
        let mut written: Vec<Staged> = Vec::with_capacity(users.len());
        for user in users {
            match self.stage(user, message, unique) {
                Ok(staged) => written.push(staged),
                Err(e) => {
                    for s in &written {
                        let _ = fs::remove_file(&s.tmp);
                    }
                    return Err(e);
                }
            }
        }
        for (i, s) in written.iter().enumerate() {
            if let Err(source) = fs::rename(&s.tmp, &s.new) {
                for later in &written[i..] {
                    let _ = fs::remove_file(&later.tmp);
                }
                return Err(DeliveryError {
                    user: s.user.clone(),
                    step: "move the message from tmp/ to new/",
                    source,
                });
            }
        }
        for s in &written {
            sync_dir(s.new.parent().unwrap_or(&self.root)).map_err(|source| DeliveryError {
                user: s.user.clone(),
                step: "sync new/",
                source,
            })?;
        }
        Ok(written.into_iter().map(|s| s.name).collect())
    }

    /// Phase 1 for one user: the Maildir's folders, then `tmp/<unique>`
    /// written and synced. A file that was created is removed on failure.
    fn stage(
        &self,
        user: &User,
        message: &[u8],
        unique: &mut dyn FnMut() -> io::Result<String>,
    ) -> Result<Staged, DeliveryError> {
        let fail = |step| {
            move |source| DeliveryError {
                user: user.to_string(),
                step,
                source,
            }
        };
        let maildir = self.maildir(user);
        if self.create {
            if make_dir(&maildir).map_err(fail("create the user's folder"))? {
                sync_dir(&self.root).map_err(fail("sync the spool folder"))?;
            }
        } else if !fs::metadata(&maildir)
            .map_err(fail("find the user's folder"))?
            .is_dir()
        {
            return Err(fail("find the user's folder")(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a folder",
            )));
        }
        let mut created = false;
        for sub in ["tmp", "new", "cur"] {
            created |= make_dir(&maildir.join(sub)).map_err(fail("create tmp/, new/ and cur/"))?;
        }
        if created {
            sync_dir(&maildir).map_err(fail("sync the user's folder"))?;
        }
        let name = unique().map_err(fail("make a unique file name"))?;
        let tmp = maildir.join("tmp").join(&name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(fail("create a file in tmp/"))?;
        let written = file.write_all(message).and_then(|()| file.sync_all());
        drop(file);
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(fail("write and sync the file in tmp/")(source));
        }
        Ok(Staged {
            user: user.to_string(),
            new: maildir.join("new").join(&name),
            tmp,
            name,
        })
    }
}

/// A message written to `tmp/`, waiting to be moved to `new/`.
struct Staged {
    user: String,
    tmp: PathBuf,
    new: PathBuf,
    name: String,
}

/// Creates a folder; `true` when it was created, `false` when it existed.
fn make_dir(path: &Path) -> io::Result<bool> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes a folder's entries durable: `fsync` on the folder. Under WASI the
/// folder is opened as a directory descriptor and `sync` on it makes the
/// host `fsync` the real folder.
fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// A Maildir file name: `SECONDS.MMICROSRRANDOM.HOST` (the spec's `M` and
/// `R` parts), with `/` and `:` in the host name escaped as the spec says.
pub fn unique_name(now: SystemTime, random: &[u8; 16], host: &str) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let host = host.replace('/', "\\057").replace(':', "\\072");
    format!(
        "{}.M{}R{hex}.{host}",
        since.as_secs(),
        since.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::address::mailbox;

    fn user(name: &str) -> User {
        mailbox(&format!("{name}@example.com"), None).unwrap()
    }

    fn counter() -> impl FnMut() -> io::Result<String> {
        let mut n = 0;
        move || {
            n += 1;
            Ok(format!("100.M0R{n}.test"))
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn unique_names() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let r = [0xab; 16];
        let cases = [
            (
                "mx",
                "1700000000.M123456Rabababababababababababababababab.mx",
            ),
            (
                "a/b:c",
                "1700000000.M123456Rabababababababababababababababab.a\\057b\\072c",
            ),
        ];
        for (host, want) in cases {
            assert_eq!(unique_name(t, &r, host), want);
        }
        assert_ne!(unique_name(t, &r, "h"), unique_name(t, &[0; 16], "h"));
    }

    #[test]
    fn delivers_to_every_user_and_creates_folders() {
        let spool = tempfile::tempdir().unwrap();
        let s = Spool {
            root: spool.path().into(),
            create: true,
        };
        let names = s
            .deliver(&[user("alice"), user("bob")], b"hello\r\n", &mut counter())
            .unwrap();
        assert_eq!(names, ["100.M0R1.test", "100.M0R2.test"]);
        for (who, name) in [("alice", &names[0]), ("bob", &names[1])] {
            let dir = spool.path().join(who);
            assert_eq!(files(&dir), ["cur", "new", "tmp"]);
            assert_eq!(files(&dir.join("new")), [name.as_str()]);
            assert!(files(&dir.join("tmp")).is_empty());
            assert_eq!(fs::read(dir.join("new").join(name)).unwrap(), b"hello\r\n");
        }
    }

    #[test]
    fn without_create_only_existing_folders_are_mailboxes() {
        let spool = tempfile::tempdir().unwrap();
        fs::create_dir(spool.path().join("carol")).unwrap();
        fs::write(spool.path().join("file"), "").unwrap();
        let s = Spool {
            root: spool.path().into(),
            create: false,
        };
        for (name, want) in [("carol", true), ("dave", false), ("file", false)] {
            assert_eq!(s.accepts(&user(name)).unwrap(), want, "{name}");
        }
        s.deliver(&[user("carol")], b"m", &mut counter()).unwrap();
        assert_eq!(files(&spool.path().join("carol/new")).len(), 1);
        let e = s
            .deliver(&[user("dave")], b"m", &mut counter())
            .unwrap_err();
        assert_eq!(e.user, "dave");
        assert!(!spool.path().join("dave").exists());
        assert!(Spool { create: true, ..s }.accepts(&user("dave")).unwrap());
    }

    #[test]
    fn a_failure_for_one_user_leaves_nothing_anywhere() {
        let spool = tempfile::tempdir().unwrap();
        // bob's folder cannot be made: a file is in the way.
        fs::write(spool.path().join("bob"), "in the way").unwrap();
        let s = Spool {
            root: spool.path().into(),
            create: true,
        };
        let e = s
            .deliver(&[user("alice"), user("bob")], b"m", &mut counter())
            .unwrap_err();
        assert_eq!(e.user, "bob");
        assert!(e.to_string().starts_with("maildir of bob: cannot "), "{e}");
        assert!(files(&spool.path().join("alice/tmp")).is_empty());
        assert!(files(&spool.path().join("alice/new")).is_empty());
    }

    #[test]
    fn a_failing_name_source_is_an_error() {
        let spool = tempfile::tempdir().unwrap();
        let s = Spool {
            root: spool.path().into(),
            create: true,
        };
        let mut no_names = || Err(io::Error::other("no randomness"));
        let e = s
            .deliver(&[user("alice")], b"m", &mut no_names)
            .unwrap_err();
        assert_eq!(e.step, "make a unique file name");
    }

    #[test]
    fn a_missing_spool_is_an_error() {
        let spool = tempfile::tempdir().unwrap();
        let s = Spool {
            root: spool.path().join("absent"),
            create: true,
        };
        assert!(s.deliver(&[user("alice")], b"m", &mut counter()).is_err());
        assert!(!spool.path().join("absent").exists());
    }

    #[test]
    fn an_existing_name_is_never_overwritten() {
        let spool = tempfile::tempdir().unwrap();
        let s = Spool {
            root: spool.path().into(),
            create: true,
        };
        let mut same = || Ok("fixed".to_owned());
        s.deliver(&[user("alice")], b"first", &mut same).unwrap();
        fs::write(spool.path().join("alice/tmp/fixed"), "stale").unwrap();
        let e = s
            .deliver(&[user("alice")], b"second", &mut same)
            .unwrap_err();
        assert_eq!(e.step, "create a file in tmp/");
        assert_eq!(
            fs::read(spool.path().join("alice/new/fixed")).unwrap(),
            b"first"
        );
        assert_eq!(
            fs::read(spool.path().join("alice/tmp/fixed")).unwrap(),
            b"stale"
        );
    }
}
