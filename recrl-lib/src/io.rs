//! Atomic file writes: write to a temporary file beside the target, then rename, so a crash
//! never leaves a half-written output behind.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically, creating parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = temp_beside(path, "")?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    persist(tmp, path)
}

/// A temporary file in `path`'s folder (created if missing) whose name ends in `suffix`;
/// fill it, then [`persist`] it to `path`.
pub fn temp_beside(path: &Path, suffix: &str) -> Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(&temp_prefix(""))
        .suffix(suffix)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// The name prefix of this process's temporaries, `.tmp-<pid>-<what>`: [`recover`] removes
/// those of processes that are gone (a killed run's leftovers), never a live run's.
pub fn temp_prefix(what: &str) -> String {
    format!("{TEMP}{}-{what}", std::process::id())
}

/// A temporary folder in `parent` (created if missing), named by [`temp_prefix`]`(what)`: fill
/// it, then hand it to [`Commit::dir`].
pub fn temp_dir_in(parent: &Path, what: &str) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    tempfile::Builder::new()
        .prefix(&temp_prefix(what))
        .tempdir_in(parent)
        .with_context(|| format!("creating a temporary folder in {}", parent.display()))
}

const TEMP: &str = ".tmp-";
const JOURNAL: &str = ".commit-";

/// Outputs that must change together (a weights file and the JSON that describes it; a data
/// folder and its checksum file). Each is first written in full to a temporary beside its
/// target; [`Commit::apply`] then writes a journal listing the renames (the commit point) and
/// makes them. A run killed before the journal leaves the old outputs (and temporaries that
/// [`recover`] removes); one killed after it leaves a journal that [`recover`] finishes, so
/// readers that call [`recover`] first see the old outputs or the new ones, never a mix.
#[derive(Debug)]
pub struct Commit {
    journal_dir: std::path::PathBuf,
    moves: Vec<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Commit {
    /// A commit whose journal goes into `journal_dir` (the folder its readers [`recover`]).
    pub fn new(journal_dir: &Path) -> Commit {
        Commit {
            journal_dir: journal_dir.to_path_buf(),
            moves: Vec::new(),
        }
    }

    /// Adds a finished temporary file (from [`temp_beside`]) that becomes `path`.
    pub fn file(&mut self, tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mode = 0o666 & !current_umask();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .and_then(|_| std::fs::File::open(tmp.path())?.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        let (_, kept) = tmp
            .keep()
            .with_context(|| format!("keeping the temporary of {}", path.display()))?;
        self.moves.push((kept, path.to_path_buf()));
        Ok(())
    }

    /// Adds `bytes` as the new content of the file `path` (written to a temporary beside it now).
    pub fn bytes(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        let mut tmp = temp_beside(path, "")?;
        tmp.write_all(bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        self.file(tmp, path)
    }

    /// Adds a finished temporary folder (from [`temp_dir_in`]) that replaces the folder `path`.
    pub fn dir(&mut self, tmp: tempfile::TempDir, path: &Path) {
        self.moves.push((tmp.keep(), path.to_path_buf()));
    }

    /// Writes the journal, then renames every temporary into place, then removes the journal.
    pub fn apply(self) -> Result<()> {
        crash_point("before the journal")?;
        let journal = self.journal_dir.join(format!(
            "{JOURNAL}{}-{}.json",
            std::process::id(),
            COMMITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        write_atomic(&journal, serde_json::to_string(&self.moves)?.as_bytes())?;
        crash_point("journal written")?;
        redo(&self.moves)?;
        std::fs::remove_file(&journal).with_context(|| format!("removing {}", journal.display()))
    }
}

/// Replaces the folder `dir` by one that `write` fills, in one commit, so that a kill leaves
/// the old folder or the new one, never a mix. `write` gets a temporary folder beside `dir`
/// that already holds the old folder's subfolders (as hard links, so a run's `resume/`
/// snapshots carry over at no cost); the old folder's files are not carried over. Readers
/// call [`recover`] on `dir`'s parent first, which finishes or discards an interrupted swap.
pub fn replace_dir(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    recover(parent)?;
    let tmp = temp_dir_in(parent, "")?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            if entry.file_type()?.is_dir() {
                link_tree(&entry.path(), &tmp.path().join(entry.file_name()))?;
            }
        }
    }
    write(tmp.path())?;
    std::fs::set_permissions(
        tmp.path(),
        std::fs::Permissions::from_mode(0o777 & !current_umask()),
    )?;
    let mut commit = Commit::new(parent);
    commit.dir(tmp, dir);
    commit.apply()
}

/// Recreates the tree `from` at `to` with hard links to its files (copies where the file
/// system refuses links).
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            link_tree(&src, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

static COMMITS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Makes the renames of a journal; idempotent (a move whose temporary is gone was made).
fn redo(moves: &[(std::path::PathBuf, std::path::PathBuf)]) -> Result<()> {
    for (i, (tmp, path)) in moves.iter().enumerate() {
        if !tmp.exists() {
            continue;
        }
        if tmp.is_dir() && path.exists() {
            std::fs::remove_dir_all(path)
                .with_context(|| format!("removing the old {}", path.display()))?;
        }
        std::fs::rename(tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
        if i + 1 < moves.len() {
            crash_point("between renames")?;
        }
    }
    Ok(())
}

/// Finishes the interrupted commits whose journals are in `dir` and removes the temporaries
/// (files and folders named by [`temp_prefix`]) of processes that no longer run. A live
/// process's journal and temporaries are left alone; this process's own count as finished
/// work (a commit of this process that is not running now failed).
pub fn recover(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut stale = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner = [JOURNAL, TEMP].iter().find_map(|p| {
            let rest = name.strip_prefix(p)?;
            rest.split(['-', '.'])
                .next()?
                .parse::<i32>()
                .ok()
                .map(|pid| (*p, pid))
        });
        match owner {
            Some((kind, pid)) if !alive_other(pid) => stale.push((kind, entry.path())),
            _ => {}
        }
    }
    // journals first: their temporaries are the new outputs, not leftovers
    stale.sort_by_key(|(kind, _)| *kind != JOURNAL);
    for (kind, path) in stale {
        if kind == JOURNAL {
            let moves: Vec<(std::path::PathBuf, std::path::PathBuf)> = read_json(&path)?;
            redo(&moves).with_context(|| format!("finishing the commit of {}", path.display()))?;
            std::fs::remove_file(&path)?;
        } else if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        } else if path.exists() {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

/// Whether `pid` is another process that is running.
fn alive_other(pid: i32) -> bool {
    if pid as u32 == std::process::id() {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Test hook: the commit stops with an error at the `n`-th crash point (counting from 0) after
/// this call, leaving the files as a kill there would. `None` switches it off.
#[doc(hidden)]
pub fn crash_at(n: Option<usize>) {
    CRASH_AT.store(
        n.map_or(usize::MAX, |n| n),
        std::sync::atomic::Ordering::SeqCst,
    );
}

static CRASH_AT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);

fn crash_point(what: &str) -> Result<()> {
    use std::sync::atomic::Ordering;
    let left = CRASH_AT.load(Ordering::SeqCst);
    if left == usize::MAX {
        return Ok(());
    }
    CRASH_AT.store(left.wrapping_sub(1), Ordering::SeqCst);
    anyhow::ensure!(left != 0, "crash point ({what})");
    Ok(())
}

/// Gives `tmp` ordinary permissions (0666 less the umask; temporary files are 0600), syncs it
/// to disk and renames it to `path`.
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = 0o666 & !current_umask();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
        .and_then(|_| std::fs::File::open(tmp.path())?.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// The process umask from `/proc/self/status` (022 when unreadable); reading it this way
/// does not briefly change it under other threads, as `umask(2)` would.
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Lowercase hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

/// Reads a JSON file into `T`; errors name the file and the path of the field that failed.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de)
        .map_err(|e| anyhow::anyhow!("{}: {} (at `{}`)", path.display(), e.inner(), e.path()))
}

/// Writes named tensors as safetensors to `path` atomically (moved to the CPU first).
pub fn save_tensors<S: AsRef<str>>(path: &Path, tensors: &[(S, tch::Tensor)]) -> Result<()> {
    let cpu: Vec<(&str, tch::Tensor)> = tensors
        .iter()
        .map(|(k, t)| (k.as_ref(), t.detach().to_device(tch::Device::Cpu)))
        .collect();
    let tmp = temp_beside(path, ".safetensors")?;
    tch::Tensor::write_safetensors(&cpu, tmp.path())
        .with_context(|| format!("writing {}", path.display()))?;
    persist(tmp, path)
}

/// Reads a JSON-lines file into one `T` per non-empty line; errors name the file and line.
pub fn read_json_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a valid record", path.display(), n + 1))
        })
        .collect()
}

/// The exclusive owner of a run (or any output folder): an advisory `flock` on a lock file that
/// holds the owner's pid and host. The kernel drops the lock when the owner exits or is killed,
/// so a lock file left by a killed process is simply taken over; while the owner lives, a second
/// [`Owner::acquire`] of the same file (another process, or a second handle in this one) is
/// refused with the holder's pid and host.
#[derive(Debug)]
pub struct Owner {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Owner {
    /// Takes the lock `path` (created, with its folder, if missing) for `what` (e.g. "PPO run
    /// ml-100k/shielded_s1"), or says who holds it.
    pub fn acquire(path: &Path, what: &str) -> Result<Owner> {
        use std::io::{Read, Seek};
        use std::os::unix::io::AsRawFd;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening the lock {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            anyhow::bail!(
                "{what} is in use by another process ({}; lock {}): wait for it to finish or stop it; a second process on the same run is refused",
                holder.trim(),
                path.display()
            );
        }
        let me = format!("pid {} on host {}", std::process::id(), hostname());
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(me.as_bytes())?;
        file.sync_data()?;
        Ok(Owner {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // the lock goes with the descriptor; the file stays (removing it would race a waiter)
        let _ = self.file.set_len(0);
    }
}

/// This machine's host name (`localhost` when it cannot be read or is not a plain name).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_atomic_replaces_whole_files_with_normal_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.txt");
        write_atomic(&path, b"first version, longer").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !current_umask());
        // no temporary files left beside it
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn sha256_of_known_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        // FIPS 180-2 test vector
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_run_has_one_owner_and_a_killed_owners_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/ml-100k/.shielded_s1.lock");
        let first = Owner::acquire(&path, "PPO run ml-100k/shielded_s1").unwrap();
        let err = Owner::acquire(&path, "PPO run ml-100k/shielded_s1").unwrap_err();
        let msg = format!("{err:#}");
        let me = format!("pid {} on host {}", std::process::id(), hostname());
        assert!(msg.contains(&me) && msg.contains("in use"), "{msg}");
        drop(first);
        let again = Owner::acquire(&path, "x").unwrap();
        drop(again);
        // another process holds it (Python's flock), then is killed with SIGKILL
        let mut holder = std::process::Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.flock(f,fcntl.LOCK_EX); f.write('pid python'); f.flush(); print('held',flush=True); time.sleep(60)",
                path.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "held");
        let err = Owner::acquire(&path, "x").unwrap_err();
        assert!(format!("{err:#}").contains("pid python"), "{err:#}");
        holder.kill().unwrap(); // SIGKILL
        holder.wait().unwrap();
        let taken = Owner::acquire(&path, "x").unwrap();
        assert_eq!(std::fs::read_to_string(taken.path()).unwrap(), me);
    }
}
