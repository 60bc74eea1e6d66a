//! The `keyed-file` import: lines of a granted file found by key, through
//! an index the host builds once per file version (see
//! `wit/keyed-file.wit` for the contract).
//!
//! - [`index`]: one version's bytes → an [`index::Index`] (pure, tested
//!   without files).
//! - this module: a plugin's indexes ([`KeyedFiles`]): resolving a guest
//!   path inside the plugin's grants, telling file versions apart, and
//!   rebuilding an index off the async workers, one rebuild at a time per
//!   file however many lookups wait for it.
//!
//! A version is the file's identity as `stat` reports it (device, inode,
//! size, modification and change times, to the nanosecond). Every lookup
//! stats the file; a different identity means a rebuild. The rebuild reads
//! the file whole and checks, with `fstat` on the open file, that nothing
//! changed while it read; if something did, the index it had keeps
//! serving and the next lookup tries again, so no lookup ever sees a mix
//! of two versions. A file replaced by rename is simply a new version.

pub mod index;

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use cap_std::fs::MetadataExt as _;
use index::{Format, Index};

/// Largest file indexed.
pub const MAX_FILE: u64 = 1 << 30;
/// Most indexes (file and format pairs) one plugin holds.
pub const MAX_INDEXES: usize = 8;

/// Why a lookup failed (the `file-error` of the WIT).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    NotGranted(String),
    #[error("{0}")]
    BadFormat(String),
    #[error("{0}")]
    Unavailable(String),
}

/// What a lookup found, owned (the WIT's `entry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Found(String),
    /// The kinds of values: tag, count, first line.
    Absent(Vec<(String, u64, String)>),
}

/// A file's identity: a different one is a different version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(m: &cap_std::fs::Metadata) -> Identity {
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// One indexed version.
struct Version {
    identity: Identity,
    index: Index,
}

/// What a rebuild ended with.
#[derive(Clone)]
enum Built {
    Done(Arc<Version>),
    /// The file changed while it was read.
    Changed,
    Failed(String),
}

/// One file and format: the version it serves, and the rebuild under way.
#[derive(Default)]
struct Cached {
    state: Mutex<CachedState>,
}

#[derive(Default)]
struct CachedState {
    current: Option<Arc<Version>>,
    building: Option<tokio::sync::watch::Receiver<Option<Built>>>,
}

/// A folder the plugin was granted: where the guest sees it, where it is.
#[derive(Clone, Debug)]
struct Folder {
    guest: String,
    host: PathBuf,
}

/// The indexes of one plugin, over the folders it was granted.
pub struct KeyedFiles {
    plugin: Arc<str>,
    folders: Vec<Folder>,
    indexes: Mutex<HashMap<(usize, PathBuf, Format), Arc<Cached>>>,
}

impl std::fmt::Debug for KeyedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedFiles")
            .field("folders", &self.folders)
            .finish_non_exhaustive()
    }
}

impl KeyedFiles {
    /// The indexes a plugin may build, over its grants (guest path, host
    /// path).
    pub fn new<'a>(plugin: &str, grants: impl IntoIterator<Item = (&'a str, &'a Path)>) -> Self {
        KeyedFiles {
            plugin: plugin.into(),
            folders: grants
                .into_iter()
                .map(|(guest, host)| Folder {
                    guest: guest.trim_end_matches('/').to_owned(),
                    host: host.to_owned(),
                })
                .collect(),
            indexes: Mutex::default(),
        }
    }

    /// The entry for `key` in the file the guest calls `path`, as of the
    /// file's current version.
    pub async fn lookup(&self, path: &str, format: Format, key: &str) -> Result<Entry, FileError> {
        format.check().map_err(FileError::BadFormat)?;
        let (folder, relative) = self.resolve(path)?;
        let cached = self.cached(folder, &relative, &format)?;
        let host = self.folders[folder].host.clone();
        let identity = stat(&host, &relative).map_err(|e| unreadable(path, &e))?;
        let version = self
            .version(&cached, identity, host, relative, format, path)
            .await?;
        Ok(match version.index.lookup(key) {
            index::Found::Line(line) => Entry::Found(line.to_owned()),
            index::Found::Absent(kinds) => Entry::Absent(
                kinds
                    .into_iter()
                    .map(|(k, line)| (k.tag.clone(), k.count, line.to_owned()))
                    .collect(),
            ),
        })
    }

    /// The folder a guest path is in, and the path inside it. The longest
    /// matching guest path wins, as for WASI preopens.
    fn resolve(&self, path: &str) -> Result<(usize, PathBuf), FileError> {
        let not_granted = || {
            FileError::NotGranted(format!(
                "{path} is not inside a folder granted to this plugin"
            ))
        };
        let (folder, rest) = self
            .folders
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let rest = path.strip_prefix(f.guest.as_str())?;
                (rest.is_empty() || rest.starts_with('/') || f.guest.is_empty())
                    .then_some((i, rest.trim_start_matches('/')))
            })
            .max_by_key(|(i, _)| self.folders[*i].guest.len())
            .ok_or_else(not_granted)?;
        let relative = PathBuf::from(rest);
        // cap-std refuses what leaves the folder (`..` past its root, an
        // absolute symbolic link, one pointing out); refusing `..` here
        // too says so plainly.
        if relative.as_os_str().is_empty()
            || relative
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(not_granted());
        }
        Ok((folder, relative))
    }

    /// The cache slot of a file and format; at most [`MAX_INDEXES`].
    fn cached(
        &self,
        folder: usize,
        relative: &Path,
        format: &Format,
    ) -> Result<Arc<Cached>, FileError> {
        let mut indexes = self.indexes.lock().expect("keyed-file indexes");
        let key = (folder, relative.to_owned(), format.clone());
        if let Some(c) = indexes.get(&key) {
            return Ok(c.clone());
        }
        if indexes.len() >= MAX_INDEXES {
            return Err(FileError::Unavailable(format!(
                "this plugin already indexes {MAX_INDEXES} files or formats, the most it may"
            )));
        }
        Ok(indexes.entry(key).or_default().clone())
    }

    /// The version to answer from: the current one if the file still has
    /// its identity, else one rebuild (shared with every lookup waiting).
    async fn version(
        &self,
        cached: &Arc<Cached>,
        identity: Identity,
        host: PathBuf,
        relative: PathBuf,
        format: Format,
        path: &str,
    ) -> Result<Arc<Version>, FileError> {
        let mut done = {
            let mut state = cached.state.lock().expect("keyed-file index");
            if let Some(current) = &state.current
                && current.identity == identity
            {
                return Ok(current.clone());
            }
            match &state.building {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    state.building = Some(rx.clone());
                    let cached = cached.clone();
                    let plugin = self.plugin.clone();
                    let guest = path.to_owned();
                    // The rebuild owns its result: a lookup that gives up
                    // waiting (its call timed out) does not lose it.
                    tokio::task::spawn_blocking(move || {
                        let started = std::time::Instant::now();
                        // A panic must not leave the slot building forever.
                        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            build(&host, &relative, &format, &guest)
                        }))
                        .unwrap_or_else(|_| Built::Failed(format!("indexing {guest} panicked")));
                        let mut state = cached.state.lock().expect("keyed-file index");
                        state.building = None;
                        match &built {
                            Built::Done(v) => {
                                tracing::info!(%plugin, file = %guest, entries = v.index.len(),
                                    bytes = v.index.bytes(), ms = started.elapsed().as_millis() as u64,
                                    "indexed");
                                state.current = Some(v.clone());
                            }
                            Built::Changed => {
                                tracing::info!(%plugin, file = %guest,
                                    "changed while being read; the previous version serves");
                            }
                            Built::Failed(why) => {
                                tracing::warn!(%plugin, file = %guest, "cannot index: {why}");
                            }
                        }
                        drop(state);
                        let _ = tx.send(Some(built));
                    });
                    rx
                }
            }
        };
        let built = done
            .wait_for(Option::is_some)
            .await
            .map_err(|_| FileError::Unavailable(format!("indexing {path} failed")))?
            .clone()
            .expect("waited for a result");
        match built {
            Built::Done(version) => Ok(version),
            Built::Failed(why) => Err(FileError::Unavailable(why)),
            Built::Changed => {
                let state = cached.state.lock().expect("keyed-file index");
                state.current.clone().ok_or_else(|| {
                    FileError::Unavailable(format!(
                        "{path} changed while it was read; try again when it is written"
                    ))
                })
            }
        }
    }
}

fn unreadable(path: &str, e: &std::io::Error) -> FileError {
    FileError::Unavailable(format!("cannot read {path}: {e}"))
}

/// The identity of `relative` inside the folder `host`, following symbolic
/// links that stay inside it.
fn stat(host: &Path, relative: &Path) -> std::io::Result<Identity> {
    let dir = cap_std::fs::Dir::open_ambient_dir(host, cap_std::ambient_authority())?;
    Ok(Identity::of(&dir.metadata(relative)?))
}

/// Reads and indexes one version (blocking).
fn build(host: &Path, relative: &Path, format: &Format, path: &str) -> Built {
    let read = || -> std::io::Result<Option<(Identity, Vec<u8>)>> {
        let dir = cap_std::fs::Dir::open_ambient_dir(host, cap_std::ambient_authority())?;
        let file = dir.open(relative)?;
        let before = Identity::of(&file.metadata()?);
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        if before.size > MAX_FILE {
            return Err(std::io::Error::other(format!(
                "{} bytes, past the {} MiB a file may have",
                before.size,
                MAX_FILE >> 20
            )));
        }
        let mut bytes = Vec::with_capacity(before.size as usize);
        (&file).take(MAX_FILE + 1).read_to_end(&mut bytes)?;
        let after = Identity::of(&file.metadata()?);
        Ok((before == after && bytes.len() as u64 == before.size).then_some((before, bytes)))
    };
    match read() {
        Err(e) => Built::Failed(format!("cannot read {path}: {e}")),
        Ok(None) => Built::Changed,
        Ok(Some((identity, bytes))) => match Index::build(bytes, format) {
            Ok(index) => Built::Done(Arc::new(Version { identity, index })),
            Err(e) => Built::Failed(format!("cannot index {path}: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format() -> Format {
        Format {
            delimiter: ':',
            key_field: 0,
            value_field: 1,
            value_required: true,
            case_sensitive: true,
            comments: "#".into(),
            indented_comments: true,
        }
    }

    fn files(dir: &Path) -> KeyedFiles {
        KeyedFiles::new("test", [("/grant", dir), ("/grant/deeper", dir)])
    }

    #[test]
    fn resolving_guest_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = KeyedFiles::new("test", [("/grant", dir.path()), ("/data/", dir.path())]);
        assert_eq!(f.resolve("/grant/p").unwrap(), (0, "p".into()));
        assert_eq!(f.resolve("/grant/a/./p").unwrap(), (0, "a/./p".into()));
        assert_eq!(f.resolve("/data/p").unwrap(), (1, "p".into()));
        for bad in [
            "/etc/passwd",
            "/grant",
            "/grant/",
            "/granted/p",
            "/grant/../etc/passwd",
            "/grant/a/../../x",
            "grant/p",
            "",
        ] {
            assert!(
                matches!(f.resolve(bad), Err(FileError::NotGranted(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn versions_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, "alice:one\n").unwrap();
        let f = files(dir.path());
        let found = |s: &str| Entry::Found(s.into());
        assert_eq!(
            f.lookup("/grant/p", format(), "alice").await,
            Ok(found("alice:one"))
        );
        // An edit in place (same size, maybe the same second).
        std::fs::write(&path, "alice:two\n").unwrap();
        assert_eq!(
            f.lookup("/grant/p", format(), "alice").await,
            Ok(found("alice:two"))
        );
        // A rename over it.
        std::fs::write(dir.path().join("new"), "bob:x\n").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert!(matches!(
            f.lookup("/grant/p", format(), "alice").await,
            Ok(Entry::Absent(_))
        ));
        assert_eq!(
            f.lookup("/grant/p", format(), "bob").await,
            Ok(found("bob:x"))
        );
        // Gone: unavailable, never an answer from the old version.
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            f.lookup("/grant/p", format(), "bob").await,
            Err(FileError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn bounds_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "root:x\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("long"), format!("a:{}", "x".repeat(70_000))).unwrap();
        std::fs::create_dir(dir.path().join("folder")).unwrap();
        let f = files(dir.path());
        let err = |r: Result<Entry, FileError>| r.unwrap_err().to_string();
        let e = err(f.lookup("/grant/out", format(), "root").await);
        assert!(e.contains("cannot read /grant/out"), "{e}");
        let e = err(f.lookup("/grant/long", format(), "a").await);
        assert!(e.contains("line 1 is longer than 64 KiB"), "{e}");
        let e = err(f.lookup("/grant/folder", format(), "a").await);
        assert!(e.contains("cannot read /grant/folder"), "{e}");
        let e = err(f.lookup("/grant/missing", format(), "a").await);
        assert!(e.contains("cannot read /grant/missing"), "{e}");
        let bad = Format {
            delimiter: '\n',
            ..format()
        };
        assert!(matches!(
            f.lookup("/grant/long", bad, "a").await,
            Err(FileError::BadFormat(_))
        ));
        // A sparse file past the bound is refused before it is read.
        let big = std::fs::File::create(dir.path().join("big")).unwrap();
        big.set_len(MAX_FILE + 1).unwrap();
        let e = err(f.lookup("/grant/big", format(), "a").await);
        assert!(e.contains("past the 1024 MiB"), "{e}");
        // At most MAX_INDEXES files or formats.
        std::fs::write(dir.path().join("p"), "a:b\n").unwrap();
        for i in 0..10 {
            let r = f
                .lookup(
                    "/grant/p",
                    Format {
                        key_field: i,
                        value_field: 20,
                        ..format()
                    },
                    "a",
                )
                .await;
            // Five slots are taken by the lookups above.
            assert_eq!(r.is_ok(), i < 3, "{i}: {r:?}");
        }
    }

    /// A file written while it is read is not indexed (and lookups keep
    /// the version they had).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_that_changes_while_read_is_not_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let filler: String = (0..200_000).map(|i| format!("f{i}:x\n")).collect();
        std::fs::write(&path, format!("alice:one\n{filler}")).unwrap();
        let f = files(dir.path());
        let alice = Entry::Found("alice:one".into());
        assert_eq!(
            f.lookup("/grant/p", format(), "alice").await,
            Ok(alice.clone())
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (stop, path) = (stop.clone(), path.clone());
            std::thread::spawn(move || {
                use std::io::Write as _;
                let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    file.write_all(b"zed:z\n").unwrap();
                }
            })
        };
        let mut changed = 0;
        for _ in 0..5 {
            if matches!(
                build(dir.path(), Path::new("p"), &format(), "/grant/p"),
                Built::Changed
            ) {
                changed += 1;
            }
            assert_eq!(
                f.lookup("/grant/p", format(), "alice").await,
                Ok(alice.clone())
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        assert!(changed > 0, "never saw the file change while reading it");
        // Written: the next lookup indexes the new version.
        assert_eq!(
            f.lookup("/grant/p", format(), "zed").await,
            Ok(Entry::Found("zed:z".into()))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_lookups_share_one_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..50_000).map(|i| format!("user{i}:pw{i}\n")).collect();
        std::fs::write(dir.path().join("p"), text).unwrap();
        let f = Arc::new(files(dir.path()));
        let lookups: Vec<_> = (0..16)
            .map(|i| {
                let f = f.clone();
                tokio::spawn(async move {
                    f.lookup("/grant/p", format(), &format!("user{}", i * 1000))
                        .await
                })
            })
            .collect();
        for (i, l) in lookups.into_iter().enumerate() {
            let want = format!("user{0}:pw{0}", i * 1000);
            assert_eq!(l.await.unwrap(), Ok(Entry::Found(want)));
        }
    }
}
