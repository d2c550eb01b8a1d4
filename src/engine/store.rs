//! The [`Store`]: opening and creating `.store/`, its configuration, its lock, and reading
//! objects back. The operations live in their own modules (`add`, `checkout`, `maintenance`)
//! as further `impl Store` blocks.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::engine::hash::{Hash, ObjectKind};
use crate::engine::index::{Commit, Index, Location};
use crate::engine::manifest::{FileManifest, TreeManifest};
use crate::engine::pack::{pack_path, PackReader};
use crate::error::{Error, Result};

/// Name of the store directory inside a workspace.
pub const STORE_DIR_NAME: &str = ".store";
/// The store format version this program writes and the newest it opens.
pub const FORMAT_VERSION: u32 = 1;

/// Content-defined chunking parameters (FastCDC 2020, normalization level 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkParams {
    /// Smallest chunk, bytes.
    pub min: u32,
    /// Target average chunk, bytes.
    pub avg: u32,
    /// Largest chunk, bytes.
    pub max: u32,
}

impl ChunkParams {
    /// Parameters derived from an average: min = avg/4, max = avg*4.
    pub fn with_avg(avg: u32) -> Result<ChunkParams> {
        if !(1024..=(4 << 20)).contains(&avg) || !avg.is_power_of_two() {
            return Err(Error::Invalid(format!(
                "chunk average {avg} must be a power of two between 1 KiB and 4 MiB"
            )));
        }
        Ok(ChunkParams {
            min: avg / 4,
            avg,
            max: avg * 4,
        })
    }
}

impl Default for ChunkParams {
    /// 64 KiB average: see `store-format.md` ("Choosing the chunk size") for the measurement.
    fn default() -> Self {
        ChunkParams {
            min: 16 * 1024,
            avg: 64 * 1024,
            max: 256 * 1024,
        }
    }
}

/// The store's configuration file, `.store/config.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Format version of the store (see `store-format.md`).
    pub format_version: u32,
    /// Chunking algorithm name; only `fastcdc-2020` exists.
    pub chunker: String,
    /// Chunking parameters. Changing them changes every file hash, so they are fixed at init.
    pub chunking: ChunkParams,
    /// zstd level used for new objects.
    pub zstd_level: i32,
    /// A pack is closed once it holds this many bytes.
    pub pack_target_size: u64,
    /// Git repository where `seal` commits each run's code (`code.repo`).
    #[serde(default)]
    pub code_repo: Option<String>,
    /// Code files larger than this stay in the store only, not in git (`code.max_git_bytes`).
    #[serde(default = "default_max_git_bytes")]
    pub code_max_git_bytes: u64,
    /// Git repository where `metadata commit` versions the catalog (`metadata.repo`).
    #[serde(default)]
    pub metadata_repo: Option<String>,
    /// MLflow tracking server (`mlflow.uri`); else `MLFLOW_TRACKING_URI` is used.
    #[serde(default)]
    pub mlflow_uri: Option<String>,
    /// How long a seal waits for its pushes (default remote, git origin) before leaving them
    /// pending, in seconds (`push.timeout`).
    #[serde(default = "default_push_timeout")]
    pub push_timeout_secs: u64,
}

fn default_push_timeout() -> u64 {
    30
}

fn default_max_git_bytes() -> u64 {
    10 << 20
}

/// Settable configuration keys (`store config set KEY VALUE`).
pub const CONFIG_KEYS: &[&str] = &[
    "code.repo",
    "code.max_git_bytes",
    "metadata.repo",
    "mlflow.uri",
    "push.timeout",
    "zstd.level",
];

impl Config {
    /// Checks every value against what the chunker and compressor accept.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let c = self.chunking;
        if self.chunker != "fastcdc-2020" {
            return Err(format!(
                "unknown chunker {:?} (this version knows fastcdc-2020)",
                self.chunker
            ));
        }
        // FastCDC 2020 limits (fastcdc crate): min 64 B..1 MiB, avg 256 B..4 MiB, max 1 KiB..16 MiB.
        let ok = (64..=1 << 20).contains(&c.min)
            && (256..=4 << 20).contains(&c.avg)
            && (1024..=16 << 20).contains(&c.max)
            && c.min <= c.avg
            && c.avg <= c.max;
        if !ok {
            return Err(format!(
                "chunking parameters {c:?} are outside FastCDC's limits"
            ));
        }
        if !(-7..=22).contains(&self.zstd_level) {
            return Err(format!("zstd level {} is outside -7..=22", self.zstd_level));
        }
        if !((1 << 20)..=(1 << 32)).contains(&self.pack_target_size) {
            return Err(format!(
                "pack_target_size {} is outside 1 MiB..4 GiB",
                self.pack_target_size
            ));
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            format_version: FORMAT_VERSION,
            chunker: "fastcdc-2020".into(),
            chunking: ChunkParams::default(),
            zstd_level: 3,
            pack_target_size: 32 << 20,
            code_repo: None,
            code_max_git_bytes: default_max_git_bytes(),
            push_timeout_secs: default_push_timeout(),
            metadata_repo: None,
            mlflow_uri: None,
        }
    }
}

/// Options for [`Store::init`].
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Chunking parameters (default: 64 KiB average).
    pub chunking: Option<ChunkParams>,
    /// zstd level (default 3).
    pub zstd_level: Option<i32>,
}

/// Name of the index file in the store directory.
pub(crate) const INDEX_FILE: &str = "index.sqlite";

/// Bytes of the space reserve (see [`Store::reserve_path`]).
pub const RESERVE_BYTES: u64 = 1 << 20;

/// An open store. Cheap operations take `&self`; it is `Sync`, so rayon workers share it.
pub struct Store {
    dir: PathBuf,
    config: Config,
    index: Mutex<Index>,
    readers: Mutex<HashMap<Hash, Arc<PackReader>>>,
    /// Why the index could not be opened, when opened with [`Store::open_for_repair`] (the
    /// store then runs on an empty in-memory index until `reindex` replaces the file).
    index_damage: Option<String>,
    /// Where missing objects come from, if a layer above installed a source.
    source: std::sync::OnceLock<Box<dyn ObjectSource>>,
}

/// Where objects missing from the local store can be fetched from (the default remote of a
/// clone): installed by a layer above the engine with [`Store::set_object_source`]. Without
/// one, a missing object is simply not found.
pub trait ObjectSource: Send + Sync {
    /// Makes every object under `starts` (the graph below them) local; returns how many objects
    /// were fetched.
    fn ensure_local(&self, store: &Store, starts: &[Hash]) -> Result<u64>;

    /// True when this source may have something to fetch for `store` (a remote is
    /// configured): otherwise restores need not look for missing content first.
    fn can_fetch(&self, store: &Store) -> bool;

    /// Makes the records and manifests under `starts` local, not the chunks of file content;
    /// returns how many objects were fetched.
    fn ensure_manifests(&self, store: &Store, starts: &[Hash]) -> Result<u64>;

    /// Fetches `chunks` (absent here), keeps them in the store, and hands each verified
    /// content to `sink` as it arrives, so that a restore writes files while the rest
    /// downloads. Fails, naming what, when one of them cannot be had.
    fn fetch_chunks(&self, store: &Store, chunks: &[Hash], sink: &ChunkSink<'_>) -> Result<u64>;
}

/// Receives each verified chunk (hash, raw bytes) as [`ObjectSource::fetch_chunks`] gets it,
/// from several threads at once.
pub type ChunkSink<'a> = dyn Fn(&Hash, &[u8]) -> Result<()> + Sync + 'a;

/// Kinds of lock on the store: writers share it, `gc` and `reindex` need it alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Many adders at once.
    Shared,
    /// One maintenance operation, nobody else.
    Exclusive,
}

/// A held store lock (released on drop, or by the OS when the process dies).
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Creates a new store in `dir` (the `.store` directory itself).
    pub fn init(dir: &Path, opts: &InitOptions) -> Result<Store> {
        if dir.join("config.json").exists() {
            return Err(Error::AlreadyExists(dir.to_path_buf()));
        }
        for sub in ["", "packs", "tmp"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        let mut config = Config::default();
        if let Some(c) = opts.chunking {
            config.chunking = c;
        }
        if let Some(l) = opts.zstd_level {
            config.zstd_level = l;
        }
        config.validate().map_err(Error::Invalid)?;
        let json = serde_json::to_vec_pretty(&config).map_err(|e| Error::Invalid(e.to_string()))?;
        // The index is created before the config file, whose presence marks a complete store.
        Index::open(&dir.join(INDEX_FILE))?;
        crate::engine::util::atomic_write(&dir.join("config.json"), &json)?;
        let s = Store::open(dir)?;
        s.keep_reserve();
        Ok(s)
    }

    /// The space reserve, `reserve`: [`RESERVE_BYTES`] kept so that `gc` can commit on a
    /// full disk (it gives the reserve up for its index commit, then frees packs).
    pub fn reserve_path(&self) -> PathBuf {
        self.dir.join("reserve")
    }

    /// Makes sure the space reserve exists (best effort: on a full disk it may not fit, and
    /// nothing depends on it but `gc` on a full disk).
    pub fn keep_reserve(&self) {
        let p = self.reserve_path();
        if fs::metadata(&p).is_ok_and(|m| m.len() == RESERVE_BYTES) {
            return;
        }
        let tmp = self.dir.join(format!("reserve.{}.tmp", std::process::id()));
        let ok = fs::write(&tmp, vec![0u8; RESERVE_BYTES as usize]).is_ok()
            && File::open(&tmp).and_then(|f| f.sync_all()).is_ok()
            && fs::rename(&tmp, &p).is_ok();
        if !ok {
            let _ = fs::remove_file(&tmp);
        }
    }

    /// Gives the space reserve up (to let `gc` commit on a full disk); true if it was there.
    pub fn release_reserve(&self) -> bool {
        fs::remove_file(self.reserve_path()).is_ok()
    }

    /// Opens the store whose directory is `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_inner(dir, false)
    }

    /// Opens the store like [`Store::open`], except that an index that is damaged (not a
    /// database, corrupt, or missing while packs exist) does not stop it: the store runs on
    /// an empty in-memory index and [`Store::index_damage`] says what is wrong. For `verify`
    /// (which reports it) and `reindex` (which replaces the file). Other errors still fail.
    pub fn open_for_repair(dir: &Path) -> Result<Store> {
        Store::open_inner(dir, true)
    }

    /// Why the index could not be opened (only with [`Store::open_for_repair`]).
    pub fn index_damage(&self) -> Option<&str> {
        self.index_damage.as_deref()
    }

    /// The index file.
    pub fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }

    fn open_inner(dir: &Path, repair: bool) -> Result<Store> {
        let cfg_path = dir.join("config.json");
        let bytes = fs::read(&cfg_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotAStore {
                start: dir.to_path_buf(),
            },
            _ => Error::io(&cfg_path, e),
        })?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(cfg_path.display().to_string(), e.to_string()))?;
        let found = v
            .get("format_version")
            .and_then(|x| x.as_u64())
            .unwrap_or(0) as u32;
        if found > FORMAT_VERSION {
            return Err(Error::NewerFormat {
                what: format!("store {}", dir.display()),
                found,
                supported: FORMAT_VERSION,
            });
        }
        let config: Config = serde_json::from_value(v)
            .map_err(|e| Error::corrupt(cfg_path.display().to_string(), e.to_string()))?;
        config
            .validate()
            .map_err(|d| Error::corrupt(cfg_path.display().to_string(), d))?;
        for sub in ["packs", "tmp"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        let opened = check_index_present(dir).and_then(|()| Index::open(&dir.join(INDEX_FILE)));
        let (index, index_damage) = match opened {
            Ok(i) => (i, None),
            Err(Error::Corrupt { detail, .. }) if repair => (Index::detached()?, Some(detail)),
            Err(e @ Error::Index { .. }) if repair => (Index::detached()?, Some(e.to_string())),
            Err(e) => return Err(e),
        };
        Ok(Store {
            dir: dir.to_path_buf(),
            config,
            index: Mutex::new(index),
            readers: Mutex::new(HashMap::new()),
            index_damage,
            source: std::sync::OnceLock::new(),
        })
    }

    /// Replaces the index with one built from `commit` alone (a rebuild from the packs,
    /// carrying over the stat cache only if the old index passes SQLite's check). The store
    /// lock must be held exclusively. The new index is written beside the old one as
    /// `index.sqlite.rebuild-<pid>` (no journal: a failed build is just deleted), closed and
    /// fsynced; then the old connection is closed, the old `-wal`, `-shm` and `-journal` are
    /// removed (SQLite would otherwise replay a stale log into the new file), the new file is
    /// renamed over `index.sqlite` and the directory fsynced. A crash before the rename
    /// leaves the old index and a stale rebuild file (removed by the next rebuild); between
    /// removing the old log and the rename, the old main file alone (at worst an older
    /// snapshot, or still damaged): `reindex` again.
    pub(crate) fn replace_index(&self, commit: &mut Commit) -> Result<()> {
        let live = self.index_path();
        remove_stale_rebuilds(&self.dir)?;
        {
            let idx = self.index();
            // The stat cache cannot be rebuilt from packs; keep it when it can be trusted.
            // A damaged index keeps none: a wrong row could make `add` skip a changed file.
            let sound = self.index_damage.is_none() && idx.check(false).is_ok_and(|p| p.is_empty());
            commit.stats = if sound {
                idx.stat_rows().unwrap_or_default()
            } else {
                Vec::new()
            };
        }
        let fresh = self
            .dir
            .join(format!("{INDEX_FILE}.rebuild-{}", std::process::id()));
        let built = (|| {
            let mut idx = Index::create_for_rebuild(&fresh, &self.packs_dir())?;
            idx.commit(commit)?;
            idx.close()?;
            File::open(&fresh)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&fresh, e))
        })();
        if let Err(e) = built {
            remove_index_files(&fresh);
            return Err(e);
        }
        let mut guard = self.index();
        // Close our connection to the old file before its log is removed (closing may
        // checkpoint into it and deletes the log it owns).
        let old = std::mem::replace(&mut *guard, Index::detached()?);
        let _ = old.close();
        let swapped = (|| {
            for ext in ["-wal", "-shm", "-journal"] {
                let p = PathBuf::from(format!("{}{ext}", live.display()));
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&p, e)),
                }
            }
            fs::rename(&fresh, &live).map_err(|e| Error::io(&live, e))?;
            crate::engine::util::fsync_dir(&self.dir)
        })();
        if let Err(e) = swapped {
            remove_index_files(&fresh);
            // Keep serving whatever is there now rather than an empty index.
            if let Ok(i) = Index::open(&live) {
                *guard = i;
            }
            return Err(e);
        }
        *guard = Index::open(&live)?;
        Ok(())
    }

    /// Unlinks packs this process renamed into place for a commit that then failed, unless
    /// the index names them (an identical pack committed by another writer). Without this, a
    /// failed `add` on a full disk would leave its packs taking the space until `gc`.
    pub(crate) fn discard_unindexed_packs(&self, packs: &[crate::engine::pack::FinishedPack]) {
        let ids: Vec<Hash> = packs.iter().map(|p| p.id).collect();
        self.index().discard_unindexed(&ids);
    }

    /// Finds the store for `start`: `STORE_DIR` if set, else the nearest `.store` upwards.
    pub fn discover(start: &Path) -> Result<PathBuf> {
        if let Some(d) = std::env::var_os("STORE_DIR") {
            return Ok(PathBuf::from(d));
        }
        let start = std::path::absolute(start).map_err(|e| Error::io(start, e))?;
        let mut cur: Option<&Path> = Some(&start);
        while let Some(d) = cur {
            let cand = d.join(STORE_DIR_NAME);
            if cand.join("config.json").is_file() {
                return Ok(cand);
            }
            cur = d.parent();
        }
        Err(Error::NotAStore { start })
    }

    /// The `.store` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sets one configuration key (see [`CONFIG_KEYS`]) and writes `config.json` atomically.
    /// An empty value unsets an optional key.
    pub fn set_config(&mut self, key: &str, value: &str) -> Result<()> {
        // Alone: two concurrent `config set` must not lose one another's change.
        let _lock = self.lock(LockMode::Exclusive)?;
        // Re-read under the lock: another `config set` may have changed it since we opened.
        let path = self.dir.join("config.json");
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let mut c: Config = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(path.display().to_string(), e.to_string()))?;
        // Repository paths are kept absolute: commands run from any directory.
        let opt = |v: &str| -> Result<Option<String>> {
            if v.is_empty() {
                return Ok(None);
            }
            let p = std::path::absolute(v).map_err(|e| Error::io(v, e))?;
            Ok(Some(p.to_string_lossy().into_owned()))
        };
        let num = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| Error::Invalid(format!("{key} needs a number, not {v:?}")))
        };
        match key {
            "code.repo" => c.code_repo = opt(value)?,
            "code.max_git_bytes" => c.code_max_git_bytes = num(value)?.max(0) as u64,
            "push.timeout" => c.push_timeout_secs = num(value)?.max(1) as u64,
            "metadata.repo" => c.metadata_repo = opt(value)?,
            // Checked: http(s) only, and never a user:password@ part (credentials come from
            // MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD, never from a file).
            "mlflow.uri" if value.is_empty() => c.mlflow_uri = None,
            "mlflow.uri" => c.mlflow_uri = Some(check_mlflow_uri(value)?),
            "zstd.level" => {
                c.zstd_level = i32::try_from(num(value)?)
                    .map_err(|_| Error::Invalid(format!("zstd.level {value} is out of range")))?
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown configuration key {key:?} (one of {})",
                    CONFIG_KEYS.join(", ")
                )))
            }
        }
        c.validate().map_err(Error::Invalid)?;
        let json = serde_json::to_vec_pretty(&c).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::engine::util::atomic_write(&self.dir.join("config.json"), &json)?;
        self.config = c;
        Ok(())
    }

    pub(crate) fn packs_dir(&self) -> PathBuf {
        self.dir.join("packs")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        // A poisoned lock means a worker panicked mid-query; SQLite itself stays consistent.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the store lock (blocking for shared, failing with [`Error::Busy`] for exclusive).
    pub fn lock(&self, mode: LockMode) -> Result<StoreLock> {
        let path = self.dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match mode {
            LockMode::Shared => file.lock_shared().map_err(|e| Error::io(&path, e))?,
            LockMode::Exclusive => match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Busy(
                        "another store process is writing; try again when it finishes".into(),
                    ))
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            },
        }
        Ok(StoreLock { _file: file })
    }

    pub(crate) fn readers_lock(&self) -> MutexGuard<'_, HashMap<Hash, Arc<PackReader>>> {
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn reader(&self, pack: &Hash) -> Result<Arc<PackReader>> {
        let mut cache = self.readers_lock();
        if let Some(r) = cache.get(pack) {
            return Ok(r.clone());
        }
        let r = Arc::new(PackReader::open(&pack_path(&self.packs_dir(), pack))?);
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(*pack, r.clone());
        Ok(r)
    }

    /// Where an object is, or [`Error::ObjectNotFound`].
    pub fn locate(&self, hash: &Hash) -> Result<Location> {
        self.index()
            .locate(hash)?
            .ok_or(Error::ObjectNotFound(hash.to_hex()))
    }

    /// Reads one object, verified against its hash.
    pub fn read_object(&self, hash: &Hash) -> Result<(ObjectKind, Vec<u8>)> {
        let loc = self.locate(hash)?;
        let reader = self.reader(&loc.pack)?;
        Ok((loc.entry.kind, reader.read(&loc.entry)?))
    }

    pub(crate) fn read_kind(&self, hash: &Hash, kind: ObjectKind) -> Result<Vec<u8>> {
        let (k, data) = self.read_object(hash)?;
        if k != kind {
            return Err(Error::Invalid(format!(
                "{hash} is a {}, not a {}",
                k.name(),
                kind.name()
            )));
        }
        Ok(data)
    }

    /// Reads a file manifest.
    pub fn file_manifest(&self, hash: &Hash) -> Result<FileManifest> {
        FileManifest::decode(&self.read_kind(hash, ObjectKind::File)?, hash)
    }

    /// Reads a tree manifest.
    pub fn tree_manifest(&self, hash: &Hash) -> Result<TreeManifest> {
        TreeManifest::decode(&self.read_kind(hash, ObjectKind::Tree)?, hash)
    }

    /// Resolves a full hash or a unique hex prefix (at least 4 digits) of a file or tree.
    pub fn resolve(&self, s: &str) -> Result<Hash> {
        let s = s.trim().to_ascii_lowercase();
        if s.len() == 64 {
            return s.parse();
        }
        if s.len() < 4 || s.len() > 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::BadHash(s));
        }
        let found = self.index().by_prefix(&s, 2)?;
        match found.as_slice() {
            [] => Err(Error::ObjectNotFound(s)),
            [h] => Ok(*h),
            _ => Err(Error::AmbiguousHash(s)),
        }
    }

    /// Installs where missing objects are fetched from (once; later calls change nothing).
    pub fn set_object_source(&self, source: Box<dyn ObjectSource>) {
        let _ = self.source.set(source);
    }

    /// Makes every object under `starts` local through the installed [`ObjectSource`], if any;
    /// returns how many objects were fetched.
    pub(crate) fn ensure_local(&self, starts: &[Hash]) -> Result<u64> {
        match self.source.get() {
            Some(s) => s.ensure_local(self, starts),
            None => Ok(0),
        }
    }

    /// True when missing objects may be fetched (an [`ObjectSource`] is installed and has
    /// somewhere to fetch from).
    pub(crate) fn can_fetch(&self) -> bool {
        self.source.get().is_some_and(|s| s.can_fetch(self))
    }

    /// Makes the records and manifests under `starts` local through the installed
    /// [`ObjectSource`], if any (file content stays where it is).
    pub(crate) fn ensure_manifests(&self, starts: &[Hash]) -> Result<u64> {
        match self.source.get() {
            Some(s) => s.ensure_manifests(self, starts),
            None => Ok(0),
        }
    }

    /// Fetches the absent `chunks` through the installed [`ObjectSource`], handing each
    /// verified content to `sink`; without a source, the first is not found.
    pub(crate) fn fetch_chunks(&self, chunks: &[Hash], sink: &ChunkSink<'_>) -> Result<u64> {
        match (self.source.get(), chunks.first()) {
            (_, None) => Ok(0),
            (Some(s), _) => s.fetch_chunks(self, chunks, sink),
            (None, Some(h)) => Err(Error::ObjectNotFound(h.to_hex())),
        }
    }

    /// Streams the content of file `hash` to `out`, verifying every chunk.
    pub fn cat(&self, hash: &Hash, out: &mut dyn std::io::Write) -> Result<u64> {
        let _lock = self.lock(LockMode::Shared)?;
        self.ensure_local(&[*hash])?;
        self.cat_unlocked(hash, out)
    }

    /// [`Store::cat`] for callers that already hold the store lock.
    pub(crate) fn cat_unlocked(&self, hash: &Hash, out: &mut dyn std::io::Write) -> Result<u64> {
        let m = self.file_manifest(hash)?;
        for (c, _) in &m.chunks {
            let data = self.read_kind(c, ObjectKind::Chunk)?;
            if let Err(e) = out.write_all(&data) {
                return Err(Error::io("<output>", e));
            }
        }
        Ok(m.size)
    }
}

/// Refuses to open an index that is missing or empty while `packs/` holds packs: SQLite would
/// silently create an empty index, and with it every pack would look like a crash leftover
/// that `gc --yes` deletes. (`init` creates the index before `config.json`, so a store always
/// has one; only `reindex`, which builds a new one, may proceed.)
fn check_index_present(dir: &Path) -> Result<()> {
    let path = dir.join(INDEX_FILE);
    let len = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if len(&path) > 0 || len(&wal) > 0 {
        return Ok(());
    }
    let packs = dir.join("packs");
    let any_pack = fs::read_dir(&packs)
        .map_err(|e| Error::io(&packs, e))?
        .filter_map(|d| d.ok())
        .filter(|d| d.path().is_dir())
        .any(|d| {
            fs::read_dir(d.path()).is_ok_and(|mut f| {
                f.any(|x| x.is_ok_and(|x| x.file_name().to_string_lossy().ends_with(".pack")))
            })
        });
    if any_pack {
        return Err(Error::corrupt(
            format!("index {}", path.display()),
            "it is missing or empty while packs/ holds packs (run `store reindex` to rebuild \
             it from the packs)",
        ));
    }
    Ok(())
}

/// Removes an index file and its SQLite companions (errors ignored: best-effort cleanup).
fn remove_index_files(path: &Path) {
    for ext in ["", "-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(format!("{}{ext}", path.display()));
    }
}

/// Removes `index.sqlite.rebuild-*` files left by a rebuild that crashed. Only a rebuild
/// creates them and it holds the store lock exclusively, as the caller does now.
fn remove_stale_rebuilds(dir: &Path) -> Result<()> {
    let prefix = format!("{INDEX_FILE}.rebuild-");
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let p = e.path();
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(x) if x.kind() == std::io::ErrorKind::NotFound => {}
                Err(x) => return Err(Error::io(&p, x)),
            }
        }
    }
    Ok(())
}

/// Checks a tracking URI: `http://` or `https://`, no `user:password@` part (credentials come
/// from the environment only). Returns it without a trailing `/`.
pub fn check_mlflow_uri(uri: &str) -> Result<String> {
    let uri = uri.trim().trim_end_matches('/');
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "MLflow tracking URI {uri:?} must start with http:// or https:// (a tracking server)"
            ))
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(Error::Invalid(
            "the MLflow tracking URI must not contain user:password@; set MLFLOW_TRACKING_TOKEN or \
             MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD in the environment instead"
                .into(),
        ));
    }
    if authority.is_empty() {
        return Err(Error::Invalid(format!(
            "MLflow tracking URI {uri:?} has no host"
        )));
    }
    Ok(uri.to_string())
}
